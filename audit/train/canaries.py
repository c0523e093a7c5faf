"""Canaries: random secrets planted in the pretraining corpus to measure memorisation.

Following "The Secret Sharer" (Carlini et al., USENIX Security 2019): each secret fills a fixed format
("my pin code is {}") with ``length`` symbols drawn uniformly from an alphabet (digits by default, written with
spaces so each digit is one token). ``count`` secrets are planted for each repetition count (e.g. 1, 4, 16 times at
random sentence boundaries of random training documents) and ``count`` more are drawn from the same space but never
inserted: the controls (repeats = 0), whose exposure shows what chance looks like. The manifest ``canaries.json``
beside the pretrained model records everything the exposure probe needs.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from audit.train.config import CanarySection
from audit.train.errors import TrainInputError

MANIFEST_FILE = "canaries.json"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class CanaryManifestError(TrainInputError):
    """canaries.json is missing or malformed, or does not fit the model's tokenizer."""


class CanarySecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str  # the full sentence as planted, e.g. "my pin code is 4 8 1 9 3 7"
    digits: list[str]  # the secret's symbols, in order
    repeats: int  # times planted; 0 = control (never inserted)


class CanaryManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str
    alphabet: list[str]
    length: int
    separator: str = " "
    candidate_space: int  # len(alphabet) ** length
    seed: int
    secrets: list[CanarySecret]
    tokenizer_check: dict | None = None  # {"single_token_symbols": bool, "symbol_token_ids": {symbol: id}}

    def render(self, digits: list[str] | tuple[str, ...]) -> str:
        """The sentence for a candidate secret: format filled with the symbols joined by the separator."""
        return self.format.format(self.separator.join(digits))

    def by_repeats(self) -> dict[int, list[CanarySecret]]:
        groups: dict[int, list[CanarySecret]] = defaultdict(list)
        for secret in self.secrets:
            groups[secret.repeats].append(secret)
        return dict(sorted(groups.items()))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_FILE
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n", encoding="utf-8")
        return path


def load_manifest(directory: str | Path) -> CanaryManifest:
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise CanaryManifestError(
            f"{directory}: no {MANIFEST_FILE}; pretrain with a [canaries] section to plant secrets"
        )
    try:
        return CanaryManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as error:
        first = error.errors()[0]
        raise CanaryManifestError(f"{path}: malformed at {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def draw_canaries(section: CanarySection) -> CanaryManifest:
    """Draw distinct secrets: ``count`` per repetition count plus ``count`` controls, seeded by ``section.seed``."""
    rng = np.random.default_rng(section.seed)
    repeat_plan = [repeats for repeats in section.repeats for _ in range(section.count)]
    repeat_plan += [0] * section.count
    seen: set[tuple[str, ...]] = set()
    secrets = []
    for repeats in repeat_plan:
        while True:
            digits = tuple(section.alphabet[i] for i in rng.integers(len(section.alphabet), size=section.length))
            if digits not in seen:
                seen.add(digits)
                break
        secrets.append(CanarySecret(text="", digits=list(digits), repeats=repeats))
    manifest = CanaryManifest(
        format=section.format,
        alphabet=list(section.alphabet),
        length=section.length,
        candidate_space=len(section.alphabet) ** section.length,
        seed=section.seed,
        secrets=secrets,
    )
    for secret in manifest.secrets:
        secret.text = manifest.render(secret.digits)
    return manifest


def plant_canaries(documents: list[str], manifest: CanaryManifest) -> list[str]:
    """A copy of ``documents`` with each secret inserted ``repeats`` times at random sentence boundaries.

    Insertion points are drawn with the manifest's seed; each copy is written as its own sentence ("... end.
    my pin code is 4 8 1 9 3 7. Next ...").
    """
    if not documents:
        raise TrainInputError("cannot plant canaries in an empty corpus")
    rng = np.random.default_rng([manifest.seed, 1])
    insertions: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for secret in manifest.secrets:
        for _ in range(secret.repeats):
            index = int(rng.integers(len(documents)))
            boundaries = _sentence_boundaries(documents[index])
            insertions[index].append((boundaries[int(rng.integers(len(boundaries)))], secret.text))
    planted = list(documents)
    for index, items in insertions.items():
        text = documents[index]
        # Insert from the back so earlier offsets stay valid; ties keep the draw order.
        for offset, sentence in sorted(items, key=lambda item: item[0], reverse=True):
            text = text[:offset] + sentence + ". " + text[offset:]
        planted[index] = text
    return planted


def count_occurrences(documents: list[str], manifest: CanaryManifest) -> dict[str, int]:
    """How often each secret's sentence occurs in ``documents`` (controls should give 0)."""
    counts = {secret.text: 0 for secret in manifest.secrets}
    for document in documents:
        if manifest.format.split("{}")[0] in document:
            for text in counts:
                counts[text] += document.count(text)
    return counts


def check_tokenizer(manifest: CanaryManifest, tokenizer) -> CanaryManifest:
    """Record whether every alphabet symbol is a single token of ``tokenizer`` (needed to score candidates)."""
    symbol_ids: dict[str, int | None] = {}
    for symbol in manifest.alphabet:
        ids = tokenizer(symbol, add_special_tokens=False)["input_ids"]
        symbol_ids[symbol] = ids[0] if len(ids) == 1 and ids[0] != tokenizer.unk_token_id else None
    check = {
        "single_token_symbols": all(token_id is not None for token_id in symbol_ids.values()),
        "symbol_token_ids": symbol_ids,
    }
    return manifest.model_copy(update={"tokenizer_check": check})


def _sentence_boundaries(text: str) -> list[int]:
    return [0] + [match.end() for match in _SENTENCE_END.finditer(text)]
