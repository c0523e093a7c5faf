"""One-line messages for pydantic validation errors in user-written TOML (audit configs, training configs,
policies): the file, the dotted key, and what is wrong with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomllib
from pydantic import ValidationError


def describe_validation_error(error: ValidationError, source: str) -> str:
    problem = error.errors()[0]
    key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
    if problem["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}; check the spelling against the documented keys"
    return f"{source}: bad value for {key!r}: {problem['msg']}"


def read_toml_file(path: Path, *, error: type[Exception], expected: str) -> dict[str, Any]:
    """Parse a user's TOML file; ``error`` with one line (file, and line/column for syntax errors) otherwise."""
    if not path.is_file():
        raise error(f"{path}: not found; expected {expected}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as problem:  # the message carries line and column
        raise error(f"{path}: malformed TOML: {problem}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text; expected {expected}") from None
