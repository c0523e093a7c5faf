"""Three-way verdicts from a confidence interval and an acceptable band: pass, fail or inconclusive.

A pass needs positive evidence: the interval lies inside the band of acceptable values. This is an equivalence
test: two one-sided tests (TOST) at level α — "the true value is not below the band's low edge" and "not above
its high edge" — both reject exactly when the (1 − 2α) confidence interval lies inside the band (Schuirmann,
"A comparison of the two one-sided tests procedure and the power approach for assessing the equivalence of
average bioavailability", J. Pharmacokinetics and Biopharmaceutics 15(6), 1987). So a 95% interval inside the
band is a TOST at α = 2.5% per side. An interval wholly outside the band is a fail (a one-sided test at the same
level rejects "acceptable"); an interval that reaches across an edge cannot decide either way: inconclusive.

A band may be open on one side (``low`` or ``high`` None): "at most 0.1" is ``Band(None, 0.1)``. The gate
(``audit.gate``) applies the same function to a policy rule's bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Band:
    """The acceptable values, edges included; None leaves that side open."""

    low: float | None = None
    high: float | None = None

    @classmethod
    def around(cls, target: float, margin: float) -> Band:
        """target ± margin, e.g. 50 ± 5 points for a preference score whose ideal is 50."""
        return cls(target - margin, target + margin)

    def describe(self, digits: int = 3) -> str:
        """The band in words for a finding's message, e.g. "45–55", "at most 0.1", "at least 0.7"."""
        low = None if self.low is None else f"{self.low:.{digits}g}"
        high = None if self.high is None else f"{self.high:.{digits}g}"
        if low is not None and high is not None:
            return f"{low}–{high}"
        return f"at most {high}" if high is not None else f"at least {low}"


def equivalence_outcome(ci_low: float | None, ci_high: float | None, band: Band) -> Outcome:
    """pass: the interval lies inside the band; fail: wholly outside it; inconclusive: across an edge, or no
    interval at all (without one nothing is evidence)."""
    if ci_low is None or ci_high is None:
        return "inconclusive"
    if (band.low is None or ci_low >= band.low) and (band.high is None or ci_high <= band.high):
        return "pass"
    if (band.low is not None and ci_high < band.low) or (band.high is not None and ci_low > band.high):
        return "fail"
    return "inconclusive"


def equivalence_note(band: Band, confidence: float) -> str:
    """What a pass means, for a finding's message: the band and the level of the two one-sided tests."""
    return (f"acceptable band {band.describe()}; a pass needs the whole {confidence:.0%} interval inside it: "
            f"two one-sided tests at α = {(1 - confidence) / 2:.3g} each")


def chance_auc_verdict(auc, *, margin: float, separated: str) -> tuple[Outcome, str] | None:
    """The verdict on "no attack beats chance" for a membership-inference AUC metric (0.5 = chance; lower is
    better): pass when its interval lies at most 0.5 + ``margin``, inconclusive when it reaches across; None when it
    lies wholly above (the caller reports the leak). ``separated`` names what the attack tells apart, e.g. "members
    from non-members"."""
    band = Band(None, 0.5 + margin)
    outcome = equivalence_outcome(auc.ci_low, auc.ci_high, band)
    if outcome == "fail":
        return None
    verdict = (f"no attack tells {separated} by more than chance allows" if outcome == "pass"
               else "the interval reaches across the acceptable band; these data cannot tell")
    return outcome, (f"Best attack AUC {auc.value:.3f} (95% CI {auc.ci_low:.3f}–{auc.ci_high:.3f}; 0.5 is chance): "
                     f"{verdict} ({equivalence_note(band, 0.95)}).")
