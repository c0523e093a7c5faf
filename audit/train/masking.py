"""Dynamic masking for masked-language-model pretraining (Devlin et al., NAACL 2019; fresh masks every step as in
RoBERTa, Liu et al., 2019).

Each non-special position is selected with probability ``mlm_probability`` (15%); a selected token is replaced by
[MASK] 80% of the time, by a random regular token 10% of the time and kept 10% of the time. Special tokens and
padding are never selected. All randomness comes from the ``torch.Generator`` passed in, never global state.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # label of positions the loss does not score


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    special_token_ids: list[int],
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
    mlm_probability: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(masked_input_ids, labels)``; labels hold the original id at selected positions, -100 elsewhere.

    Random replacements are drawn from the regular vocabulary (ids not in ``special_token_ids``).
    """
    specials = torch.tensor(sorted(set(special_token_ids)), dtype=input_ids.dtype)
    maskable = ~torch.isin(input_ids, specials)
    # Draw every random number for the full shape in a fixed order so a given generator state always gives the
    # same masks, whatever the tokens are.
    selection_draw = torch.rand(input_ids.shape, generator=generator)
    action_draw = torch.rand(input_ids.shape, generator=generator)
    regular_ids = _regular_ids(vocab_size, specials)
    replacement = regular_ids[torch.randint(len(regular_ids), input_ids.shape, generator=generator)]

    selected = maskable & (selection_draw < mlm_probability)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    masked = input_ids.clone()
    masked[selected & (action_draw < 0.8)] = mask_token_id
    randomised = selected & (action_draw >= 0.8) & (action_draw < 0.9)
    masked[randomised] = replacement[randomised].to(input_ids.dtype)
    return masked, labels


def _regular_ids(vocab_size: int, specials: torch.Tensor) -> torch.Tensor:
    all_ids = torch.arange(vocab_size)
    return all_ids[~torch.isin(all_ids, specials.to(all_ids.dtype))]


def step_generator(seed: int, step: int, *, stream: int = 0) -> torch.Generator:
    """A generator for one training step, derived from (seed, stream, step) alone.

    Stateless derivation means a resumed run draws exactly the masks and batch orders of an uninterrupted run
    without saving generator state.
    """
    generator = torch.Generator()
    generator.manual_seed(_mix(seed, stream, step))
    return generator


def _mix(*values: int) -> int:
    # SplitMix64-style mixing so that nearby (seed, step) pairs give unrelated generator seeds.
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 29
    return state & 0x7FFFFFFFFFFFFFFF
