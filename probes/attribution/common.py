"""Settings and example selection shared by the attribution probes.

Every attribution probe explains the same kind of input: held-out texts of the fine-tuning task (``split``,
default "test"), or texts given in the config (``texts``). Texts with nothing to explain — empty, or only special
tokens — are dropped with a warning; if none is left the probe stops with a ProbeInputError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from probes.attribution.adapter import AttributionModel
from probes.attribution.methods import DEFAULT_MAX_SEQUENCES, METHOD_LABELS, Method, TokenAttribution
from probes.base import ProbeConfig, ProbeContext, ProbeInputError, ProbeSkipped


class AttributionConfig(ProbeConfig):
    """Settings every attribution probe shares.

    baseline_token: the IG reference replaces every non-special token by "pad" ([PAD], default: a token the model
                    learnt to ignore) or "mask" ([MASK], the MLM's "unknown word"); [CLS]/[SEP] are kept.
    n_steps:        IG integration steps (Gauss–Legendre); must be >= 1.
    batch_size:     examples per captum call (they are padded together; the attention mask keeps them exact).
    max_sequences:  sequences per forward/backward pass inside captum (n_steps × batch rows are split into these
                    in whole steps; default ``methods.DEFAULT_MAX_SEQUENCES``, sized for CPU caches).
    n_examples:     how many texts to explain (a seeded sample when the split has more).
    split / texts:  which task split to explain, or explicit texts instead of the task.
    """

    baseline_token: Literal["pad", "mask"] = "pad"
    n_steps: int = Field(50, ge=1, description="IG integration steps; must be >= 1")
    batch_size: int = Field(8, ge=1)
    max_sequences: int = Field(DEFAULT_MAX_SEQUENCES, ge=1)
    n_examples: int = Field(64, ge=1)
    split: str = "test"
    texts: list[str] | None = None
    n_bootstrap: int = Field(1000, ge=100)


@dataclass
class Selection:
    """The texts a probe explains, with their ids, labels and groups (empty dicts when texts came from config)."""

    ids: list[str]
    texts: list[str]
    groups: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def attribution_model(ctx: ProbeContext) -> AttributionModel:
    return AttributionModel.from_subject(ctx.subject)


def select_texts(ctx: ProbeContext, config: AttributionConfig, model: AttributionModel) -> Selection:
    """Config texts, else a seeded sample of the task split; drops texts with no content token (with a warning)."""
    if config.texts is not None:
        ids = [f"text-{index}" for index in range(len(config.texts))]
        texts, groups = list(config.texts), [{} for _ in config.texts]
    elif ctx.task is not None:
        examples = ctx.task.split(config.split)
        if not examples:
            raise ProbeSkipped(f"the task has no examples in split {config.split!r}; set `split` or `texts`")
        ids = [example.id for example in examples]
        texts = [example.text for example in examples]
        groups = [dict(example.groups) for example in examples]
    else:
        raise ProbeSkipped("no texts to explain: give the fine-tuning task data or `texts` in the probe config")

    keep = [index for index, text in enumerate(texts) if isinstance(text, str) and model.has_content(text)]
    warnings = []
    if len(keep) < len(texts):
        warnings.append(
            f"{len(texts) - len(keep)} text(s) were left out because they are empty or only special tokens"
        )
    if not keep:
        raise ProbeInputError(
            "every text is empty or only special tokens; expected texts with at least one ordinary word"
        )
    if len(keep) > config.n_examples:
        chosen = ctx.rng.choice(len(keep), size=config.n_examples, replace=False)
        keep = [keep[index] for index in sorted(chosen)]
    return Selection(
        ids=[ids[i] for i in keep], texts=[texts[i] for i in keep], groups=[groups[i] for i in keep],
        warnings=warnings,
    )


def label_name(ctx: ProbeContext, label: int) -> str:
    names = getattr(ctx.subject, "labels", None)
    try:
        return str(names[label]) if names else str(label)
    except (IndexError, TypeError):
        return str(label)


def display_item(
    title: str, attribution: TokenAttribution, model: AttributionModel
) -> dict[str, object]:
    """A "tokens" figure item: words (sub-tokens summed) with scores scaled so the largest |score| is 1."""
    words = attribution.word_scores(model.word_alignment(attribution.text))
    scale = max((abs(score) for _, score in words), default=0.0) or 1.0
    return {
        "title": title,
        "tokens": [word for word, _ in words],
        "scores": [round(score / scale, 4) for _, score in words],
    }


def top_words(attribution: TokenAttribution, model: AttributionModel, k: int = 3) -> list[str]:
    """The k words with the largest positive attribution towards the predicted class (rollout: largest weight)."""
    words = attribution.word_scores(model.word_alignment(attribution.text))
    ranked = sorted(words, key=lambda pair: -pair[1])
    return [word for word, score in ranked[:k] if score > 0]


def method_label(method: Method) -> str:
    return METHOD_LABELS[method]
