"""Word-boundary-aware, case-preserving identity-term substitution for counterfactual texts (Garg et al., AIES 2019).

For a text whose first identity term (in a category) has value ``u``, one counterfactual is made per other value
``v`` of the category: every term of ``u`` becomes the slot-aligned term of ``v`` and every term of ``v`` becomes
the term of ``u`` (a swap, so "he told her" becomes "she told him"); terms of other values are left alone.
Terms match whole words only ("he" never matches inside "the" or "he-man"), case-insensitively, and the
replacement copies the original's case pattern (UPPER, Title, lower).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from probes.bias.terms import SwapCategory

# After these words an object pronoun is meant ("gave it to her", "her and me"), so "her" becomes "him", not "his".
_NOT_A_NOUN_PHRASE_START = frozenset(
    ["a", "an", "and", "the", "to", "in", "on", "at", "for", "with", "that", "this", "about", "from", "by", "as", "or", "but", "so", "because", "if", "when", "up", "out", "off", "down", "back", "again", "too", "very", "is", "was", "be", "been", "are", "were", "will", "would", "can", "could", "should", "had", "has", "have", "do", "did", "not", "no", "yet", "then", "than", "into", "onto", "over", "under", "after", "before", "while", "since", "until"]
)


@dataclass(frozen=True)
class Counterfactual:
    text: str
    category: str
    source_value: str
    target_value: str
    replaced: tuple[str, ...]


def match_case(template: str, word: str) -> str:
    """``word`` written in the case pattern of ``template`` (UPPER, Title or lower)."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word.lower()


@lru_cache(maxsize=64)
def _term_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first so that "african american" wins over "african"; inner spaces match any whitespace.
    ordered = sorted(set(terms), key=lambda term: (-len(term), term))
    alternatives = "|".join(re.escape(term).replace(r"\ ", r"\s+") for term in ordered)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


class TermSwapper:
    """Makes counterfactual texts for one identity category."""

    def __init__(self, category: SwapCategory) -> None:
        self.category = category
        self._lookup: dict[str, tuple[str, int]] = {}
        for value, terms in category.values.items():
            for slot, term in enumerate(terms):
                self._lookup.setdefault(_normalise(term), (value, slot))
        self._pattern = _term_pattern(tuple(term for terms in category.values.values() for term in terms))

    def counterfactuals(self, text: str) -> list[Counterfactual]:
        matches = list(self._pattern.finditer(text))
        if not matches:
            return []
        source = self._lookup[_normalise(matches[0].group(0))][0]
        results = []
        for target in self.category.values:
            if target == source:
                continue
            new_text, replaced = self._swap(text, matches, source, target)
            if new_text != text:
                results.append(Counterfactual(new_text, self.category.name, source, target, replaced))
        return results

    def _swap(self, text: str, matches: list[re.Match[str]], source: str, target: str) -> tuple[str, tuple[str, ...]]:
        pieces, replaced, cursor = [], [], 0
        for match in matches:
            original = match.group(0)
            value, slot = self._lookup[_normalise(original)]
            if value == source:
                new_value = target
            elif value == target:
                new_value = source
            else:
                continue
            word = self.category.values[new_value][slot]
            if _normalise(original) == "her" and word == "his" and _object_position(text, match.end()):
                word = "him"
            pieces.append(text[cursor : match.start()])
            pieces.append(match_case(original, word))
            replaced.append(f"{original}→{match_case(original, word)}")
            cursor = match.end()
        pieces.append(text[cursor:])
        return "".join(pieces), tuple(replaced)


def _normalise(term: str) -> str:
    return " ".join(term.lower().split())


def _object_position(text: str, end: int) -> bool:
    """True when the word after position ``end`` cannot start the noun phrase a possessive "her" would begin."""
    following = re.match(r"\s+([A-Za-z']+)", text[end:])
    return following is None or following.group(1).lower() in _NOT_A_NOUN_PHRASE_START


def find_terms(text: str, terms: list[str] | tuple[str, ...]) -> list[str]:
    """The listed terms that occur in ``text`` as whole words (lower-cased, longest match wins), in order."""
    pattern = _term_pattern(tuple(terms))
    return [_normalise(match.group(0)) for match in pattern.finditer(text)]
