"""Competence checks before a bias verdict: can the language model tell meaningful text from meaningless text?

A stereotype benchmark compares the model's scores of nearly identical sentences. A model that cannot tell a
meaningful sentence from a meaningless one (an untrained or badly under-trained model) scores such sentences
at random, so its stereotype score sits near the ideal 50 for lack of any preference at all, not for lack of
bias. Such a score is no evidence either way: the bias verdict is inconclusive, with the competence figure as
the reason. A model is competent when the whole interval of its competence score (the share of comparisons won by
the meaningful text; 50 is chance, **higher is better**) lies above a minimum, ``min_competence`` in the probes'
settings, 60 by default. Not merely above 50: a model that beats chance by a few points (a competence of 53
[51, 56]) has preferences too weak to show a stereotype either way, and its stereotype score sits near 50 for that
reason. At 60 the model prefers the meaningful text in at least one comparison in five more than a coin would.

* StereoSet: its own language-modelling score (LMS, Nadeem et al., ACL 2021), which compares each meaningful
  candidate with an unrelated one in the same context.
* CrowS-Pairs: the same comparison built from the pairs themselves (``probes.bias.crows_pairs``).
"""

from __future__ import annotations

from collections.abc import Iterable

from audit.results import Metric

CHANCE = 50.0
DEFAULT_MIN_COMPETENCE = 60.0


def incompetence_reason(competence: Metric, *, what: str, minimum: float = DEFAULT_MIN_COMPETENCE) -> str | None:
    """None when the competence score's interval lies wholly above ``minimum``, else the reason for an
    inconclusive verdict, e.g. "the model cannot tell a meaningful sentence from a meaningless one: LMS 50.9
    [48.8, 53.1]"."""
    if competence.value is not None and competence.ci_low is not None and competence.ci_low > minimum:
        return None
    figure = "undefined" if competence.value is None else f"{competence.value:.1f}" + (
        "" if competence.ci_low is None or competence.ci_high is None
        else f" [{competence.ci_low:.1f}, {competence.ci_high:.1f}]")
    return (f"the model cannot tell a meaningful sentence from a meaningless one: {what} {figure} "
            f"(chance is {CHANCE:g}; a decided verdict needs its whole interval above {minimum:g})")


def mark_inconclusive(metrics: Iterable[Metric], reason: str | None) -> None:
    """Record ``reason`` on every given metric (nothing when ``reason`` is None)."""
    if reason is None:
        return
    for metric in metrics:
        metric.inconclusive_reason = reason
