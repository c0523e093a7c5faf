"""Text from results files on the terminal: control characters are shown as escapes, never obeyed.

A results.json (or a policy) can hold any text — a group name, a probe message, a rule name. Printed raw, an ESC or
OSC sequence would clear the screen, retitle the window or plant a hyperlink; every place that echoes such text to
the terminal passes it through ``printable`` first.
"""

from __future__ import annotations

import unicodedata

# Bidirectional embeddings, overrides and isolates: they reorder what the reader sees (Trojan Source).
_BIDI_CONTROLS = frozenset(chr(code) for code in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def _is_control(character: str) -> bool:
    # Cc: C0 controls (ESC, BEL, CR ...), DEL and the C1 controls (CSI U+009B, OSC U+009D ...).
    return unicodedata.category(character) == "Cc" or character in _BIDI_CONTROLS


def printable(text: object) -> str:
    """``text`` as one line with every control character written as a visible escape (ESC → ``\\x1b``)."""
    return "".join(
        (f"\\x{ord(character):02x}" if ord(character) < 0x100 else f"\\u{ord(character):04x}")
        if _is_control(character) else character
        for character in str(text)
    )
