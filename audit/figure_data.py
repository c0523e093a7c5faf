"""The shape of a Figure's ``data`` for each kind (see audit.results.Figure), checked when results are made or
loaded, so that the report's charts never meet a missing key, a text where a number belongs or lists that do not
line up.

Numbers may be None (a gap in the chart); NaN/infinity are allowed here and left empty by ProbeResult, which
warns about them. Labels and token texts may be text or numbers: they are shown as text.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any


class _Shape:
    """Checks on one figure's data, each raising ValueError with the figure, the key and what is expected."""

    def __init__(self, figure: str, kind: str) -> None:
        self.where = f"figure {figure!r} ({kind})"

    def fail(self, key: str, expected: str) -> None:
        raise ValueError(f"{self.where}: data {key} must be {expected}")

    def mapping(self, value: Any, key: str) -> Mapping:
        if not isinstance(value, Mapping):
            self.fail(key, "an object")
        return value

    def sequence(self, value: Any, key: str, expected: str, is_item, length: int | None = None) -> list:
        if not isinstance(value, (list, tuple)) or not all(is_item(item) for item in value):
            self.fail(key, f"a list of {expected}")
        if length is not None and len(value) != length:
            self.fail(key, f"a list of {length} {expected} (one per label/point), got {len(value)}")
        return list(value)

    def optional_number(self, value: Any, key: str) -> None:
        if not _is_number_or_none(value):
            self.fail(key, "a number or null")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_number_or_none(value: Any) -> bool:
    return value is None or _is_number(value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or _is_number(value)


def _check_bar(shape: _Shape, data: Mapping) -> None:
    labels = shape.sequence(data.get("labels"), "labels", "texts", _is_text)
    shape.sequence(data.get("values"), "values", "numbers or nulls", _is_number_or_none, len(labels))
    for key in ("ci_low", "ci_high"):
        if data.get(key):
            shape.sequence(data[key], key, "numbers or nulls", _is_number_or_none, len(labels))
    shape.optional_number(data.get("reference"), "reference")


def _check_lines(shape: _Shape, data: Mapping) -> None:
    series_list = shape.sequence(data.get("series"), "series", "objects", lambda item: isinstance(item, Mapping))
    for index, series in enumerate(series_list):
        key = f"series[{index}]"
        if not _is_text(series.get("label")):
            shape.fail(f"{key}.label", "a text")
        x = shape.sequence(series.get("x"), f"{key}.x", "numbers or nulls", _is_number_or_none)
        for name in ("y", "ci_low", "ci_high"):
            if name == "y" or series.get(name):
                shape.sequence(series.get(name), f"{key}.{name}", "numbers or nulls", _is_number_or_none, len(x))
    shape.optional_number(data.get("reference"), "reference")


def _check_tokens(shape: _Shape, data: Mapping) -> None:
    items = shape.sequence(data.get("items"), "items", "objects", lambda item: isinstance(item, Mapping))
    for index, item in enumerate(items):
        key = f"items[{index}]"
        if not _is_text(item.get("title", "")):
            shape.fail(f"{key}.title", "a text")
        tokens = shape.sequence(item.get("tokens"), f"{key}.tokens", "texts", _is_text)
        shape.sequence(item.get("scores"), f"{key}.scores", "numbers or nulls", _is_number_or_none, len(tokens))


_CHECKS = {"bar": _check_bar, "line": _check_lines, "roc": _check_lines, "tokens": _check_tokens}


def check_figure_data(kind: str, data: Any, *, figure: str) -> None:
    """Raise ValueError naming the figure and the key when ``data`` does not have the shape of ``kind``."""
    shape = _Shape(figure, kind)
    _CHECKS[kind](shape, shape.mapping(data, "(top level)"))
