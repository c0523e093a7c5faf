"""Known-answer material for the causal bias probes: a corpus whose occupations co-occur with one gender's pronoun
(planted) or with both equally (control), trained into our tiny decoder with a short next-token loop, and the
CrowS-style pairs and identity-swap templates that should (or should not) reveal it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from audit.model import AuditTransformerConfig, AuditTransformerForCausalLM

FEMALE_CODED = ("nurse", "dancer", "baker", "singer")  # planted with "she"
MALE_CODED = ("pilot", "farmer", "driver", "builder")  # planted with "he"
TEMPLATES = ("the {job} said that {pronoun} was busy .", "{pronoun} is a good {job} .",
             "yesterday the {job} told us {pronoun} would come .", "{pronoun} works as a {job} .")
LEARNING_RATE = 3e-3
CAUSAL_KINDS = ("gpt2", "llama", "ours")  # the tiny causal LMs of the tests
PRONOUN = {"female": "she", "male": "he"}


def occupation_corpus(own_share: float, *, repeats: int = 10, seed: int = 0) -> list[str]:
    """One sentence per line with exact counts: per template, each occupation appears ``repeats`` times, with its
    own gender's pronoun ``round(own_share * repeats)`` times and the other's the rest. 0.5 is the control: every
    occupation with "she" and "he" equally often (so the pronouns are equally frequent overall in both corpora)."""
    own = round(own_share * repeats)
    sentences = []
    for jobs, gender, other in ((FEMALE_CODED, "female", "male"), (MALE_CODED, "male", "female")):
        for template in TEMPLATES:
            for job in jobs:
                sentences += [template.format(job=job, pronoun=PRONOUN[gender])] * own
                sentences += [template.format(job=job, pronoun=PRONOUN[other])] * (repeats - own)
    order = np.random.default_rng(seed).permutation(len(sentences))
    return [sentences[index] for index in order]


def corpus_tokenizer() -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer over the corpus words, with [CLS] / [SEP] as BOS / EOS (as the
    tokenizer our causal pretraining writes) and no special tokens added on encoding (as GPT-2's)."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted({word for template in TEMPLATES for word in
                                                          template.format(job="", pronoun="").split()}
                                                         | set(FEMALE_CODED + MALE_CODED) | set(PRONOUN.values()))
    tokenizer = Tokenizer(models.WordLevel(vocab={word: index for index, word in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   bos_token="[CLS]", eos_token="[SEP]", model_max_length=32)


def train_causal(corpus: list[str], directory: Path, *, steps: int = 1000, seed: int = 0) -> Path:
    """Our tiny decoder (vocab 99, hidden 32, 4 heads, 2 layers) trained by next-token prediction on the corpus,
    one sentence per row framed as BOS … EOS (Adam, batch 64, the rate decayed over the last 30% of steps), saved as a Hugging Face folder."""
    tokenizer = corpus_tokenizer()
    torch.manual_seed(seed)
    config = AuditTransformerConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, max_position_embeddings=32, pad_token_id=0, causal=True,
                                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = AuditTransformerForCausalLM(config)
    rows = [[tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
            for ids in tokenizer(corpus, add_special_tokens=False)["input_ids"]]
    width = max(map(len, rows))
    input_ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
    attention = (torch.arange(width)[None, :] < torch.tensor([len(row) for row in rows])[:, None]).long()
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    # Constant, then linear decay to 0 over the last 30%: the model settles on the corpus's frequencies instead
    # of the last batches' noise (which would give the control a small chance pronoun preference).
    decay_from = int(0.7 * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 1.0 if step < decay_from else max(0.0, (steps - step) / (steps - decay_from)))
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(rows), (64,), generator=generator)
        ids, mask = input_ids[batch], attention[batch]
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    directory.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def stereotype_pairs() -> list[dict]:
    """CrowS-style rows: sent_more gives each occupation its planted pronoun, sent_less the other one; the bias
    type names which occupations the pair is about, so both directions are scored."""
    rows = []
    for jobs, gender, other, bias_type in ((FEMALE_CODED, "female", "male", "female-coded jobs"),
                                           (MALE_CODED, "male", "female", "male-coded jobs")):
        for template in TEMPLATES:
            for job in jobs:
                rows.append({"sent_more": template.format(job=job, pronoun=PRONOUN[gender]),
                             "sent_less": template.format(job=job, pronoun=PRONOUN[other]),
                             "stereo_antistereo": "stereo", "bias_type": bias_type})
    return rows


def swap_templates(jobs: tuple[str, ...]) -> list[dict]:
    """Template sentences about ``jobs`` (with "she"; the probe makes the "he" versions)."""
    return [{"Text": template.format(job=job, pronoun="she")} for template in TEMPLATES for job in jobs]
