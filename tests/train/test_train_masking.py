import torch

from audit.train.masking import IGNORE_INDEX, mask_tokens, step_generator

SPECIALS = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK]
MASK_ID, VOCAB = 4, 99


def _batch(generator_seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(generator_seed)
    ids = torch.randint(5, VOCAB, (256, 64), generator=generator)
    ids[:, 0], ids[:, -1] = 2, 3
    ids[::4, 40:] = 0  # padding in every fourth row
    return ids


def test_masking_rate_and_80_10_10_split():
    ids = _batch()
    masked, labels = mask_tokens(ids, special_token_ids=SPECIALS, mask_token_id=MASK_ID, vocab_size=VOCAB,
                                 generator=torch.Generator().manual_seed(1))
    maskable = ~torch.isin(ids, torch.tensor(SPECIALS))
    selected = labels != IGNORE_INDEX
    rate = selected.sum().item() / maskable.sum().item()
    assert abs(rate - 0.15) < 0.01
    n = selected.sum().item()
    to_mask = (masked[selected] == MASK_ID).sum().item() / n
    kept = (masked[selected] == ids[selected]).sum().item() / n
    randomised = 1 - to_mask - kept
    assert abs(to_mask - 0.8) < 0.02
    # a random replacement can draw the original token (1/94 of the time), so "kept" is ~10% + ~0.1%
    assert abs(kept - 0.1) < 0.015 and abs(randomised - 0.1) < 0.015
    assert torch.equal(labels[selected], ids[selected])


def test_specials_and_padding_are_never_masked_or_changed():
    ids = _batch()
    masked, labels = mask_tokens(ids, special_token_ids=SPECIALS, mask_token_id=MASK_ID, vocab_size=VOCAB,
                                 generator=torch.Generator().manual_seed(2), mlm_probability=0.9)
    special = torch.isin(ids, torch.tensor(SPECIALS))
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(masked[special], ids[special])
    # random replacements come from the regular vocabulary only
    replaced = (labels != IGNORE_INDEX) & (masked != ids) & (masked != MASK_ID)
    assert replaced.any() and (masked[replaced] >= 5).all()


def test_same_generator_seed_same_masks_and_step_generators_differ():
    ids = _batch()
    kwargs = {"special_token_ids": SPECIALS, "mask_token_id": MASK_ID, "vocab_size": VOCAB}
    first = mask_tokens(ids, generator=step_generator(0, 5), **kwargs)
    again = mask_tokens(ids, generator=step_generator(0, 5), **kwargs)
    other = mask_tokens(ids, generator=step_generator(0, 6), **kwargs)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])


def test_masking_leaves_global_rng_alone():
    before = torch.get_rng_state()
    mask_tokens(_batch(), special_token_ids=SPECIALS, mask_token_id=MASK_ID, vocab_size=VOCAB,
                generator=step_generator(1, 1))
    assert torch.equal(before, torch.get_rng_state())
