"""One-line messages for pydantic validation errors in user-written TOML (audit configs, training configs,
policies): the file, the dotted key, and what is wrong with it."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(error: ValidationError, source: str) -> str:
    problem = error.errors()[0]
    key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
    if problem["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}; check the spelling against the documented keys"
    return f"{source}: bad value for {key!r}: {problem['msg']}"
