"""The self-check: did the audit recover the effects planted in its own subject?

A probe is trustworthy only if it finds an effect we know is there. The default audit's subject carries such
known answers: the calibration scenario (``audit.data.scenarios``) flips a share of one group's positive training
labels, and pretraining plants canaries 1, 4 and 16 times beside never-inserted controls (``audit.train.canaries``;
Carlini et al., USENIX Security 2019). After the probes ran, each planted effect is looked up in the finished
``ProbeResult``s and judged by a stated condition on its interval:

- planted fairness gap: ``group_metrics``' selection-rate gap (advantaged − disadvantaged) has its CI above 0;
- counterfactual flips: ``counterfactual``'s flip rate for the planted group column has its CI above 0 (a model
  that ignores the group flips no decision when only the group's words change);
- identity attribution: ``identity_attribution``'s share of attribution on identity words has its CI lower bound
  above the share of words that are identity words (what an even spread would give). The weakest of the five:
  attribution mass is not causal effect, and names and pronouns can draw attribution in a model that does not act
  on them (a 40-step default recipe with no selection-rate gap passed it), so read it beside the first two rows;
- canary exposure: ``exposure``'s mean exposure rises with the repeat count — the two largest counts above the
  controls in order (e.g. 16× > 4× > controls) — and the largest count's CI lies above the controls' CI;
- membership: ``membership``'s strongest attack has an AUC whose CI lower bound is above 0.5 (chance).

A probe that did not run, was skipped, ended in error or left the number undefined makes its row "not checked",
with the reason: the self-check reports what it could not test rather than failing it. Only the results and the
planted truth are read, so the check works on a results list built by hand (tests) as on a real run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from audit.results import Metric, ProbeResult, SelfCheck, SelfCheckRow

CONTROL_GROUP = "control"  # the exposure probe's group of never-inserted canaries; "repeats_N" for N insertions


def exposure_group(repeats: int) -> str:
    """The exposure probe's metric group for canaries planted ``repeats`` times (0 = the controls)."""
    return CONTROL_GROUP if repeats == 0 else f"repeats_{repeats}"


@dataclass(frozen=True)
class PlantedTruth:
    """What was planted in the subject: the calibration scenario's label flips and the canaries' repeat counts.

    ``scenario`` is the scenario's planted record (``TaskData.planted``; keys ``group_column``,
    ``advantaged_group``, ``disadvantaged_group``, ``flip_rate``, ``positive_label_name``) or None;
    ``canary_repeats`` the distinct repeat counts of the canary manifest (0 = never-inserted controls).
    """

    scenario: dict[str, Any] | None = None
    canary_repeats: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.scenario and not self.canary_repeats

    def summary(self) -> dict[str, Any]:
        """The planted truth as recorded in results.json (the scenario's headline, not its list of flipped ids)."""
        summary: dict[str, Any] = {}
        if self.scenario:
            summary["scenario"] = {key: self.scenario.get(key) for key in
                                   ("group_column", "advantaged_group", "disadvantaged_group", "positive_label_name",
                                    "flip_rate", "flip_policy", "n_flipped")}
        if self.canary_repeats:
            summary["canary_repeats"] = list(self.canary_repeats)
        return summary


class _NotChecked(Exception):
    """A row cannot be judged; the message is the reason."""


def evaluate_self_check(probes: Sequence[ProbeResult], planted: PlantedTruth, *,
                        enforced: bool = False) -> SelfCheck | None:
    """One row per planted effect of ``planted`` judged on the finished ``probes``; None when nothing was planted."""
    if planted.empty:
        return None
    by_name = {result.probe: result for result in probes}
    rows = []
    if planted.scenario:
        rows += [_fairness_gap_row(by_name, planted.scenario), _counterfactual_row(by_name, planted.scenario),
                 _identity_attribution_row(by_name, planted.scenario), _membership_row(by_name)]
    if planted.canary_repeats:
        rows.append(_exposure_row(by_name, planted.canary_repeats))
    return SelfCheck(planted=planted.summary(), enforced=enforced, rows=rows)


# ------------------------------------------------------------------------------------------------------ lookups

def _ran(by_name: dict[str, ProbeResult], probe: str) -> ProbeResult:
    result = by_name.get(probe)
    if result is None:
        raise _NotChecked(f"the {probe} probe did not run in this audit")
    if result.status != "ok":
        first_line = result.message.strip().splitlines()[0] if result.message.strip() else "no reason given"
        raise _NotChecked(f"the {probe} probe {'was skipped' if result.status == 'skipped' else 'ended in error'}: "
                          f"{first_line}")
    return result


def _interval(result: ProbeResult, name: str, group: str | None = None) -> Metric:
    """The metric with a value and a full interval, else _NotChecked saying which is missing."""
    where = f"{name}" + (f" for {group!r}" if group is not None else "")
    try:
        metric = result.metric(name, group)
    except KeyError:
        raise _NotChecked(f"the {result.probe} probe reported no {where}") from None
    if metric.value is None:
        raise _NotChecked(f"{result.probe}: {where} is not defined ({metric.undefined_reason or 'no reason given'})")
    if metric.ci_low is None or metric.ci_high is None:
        raise _NotChecked(f"{result.probe}: {where} has no confidence interval")
    return metric


def _with_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    return f"{value:.{digits}f} (95% CI {low:.{digits}f} to {high:.{digits}f})"


def _row(effect: str, title: str, expected: str, condition: str, probe: str, metric: str, group: str | None,
         judge: Callable[[], tuple[bool, str, Metric | tuple[float, float, float]]]) -> SelfCheckRow:
    """A row from ``judge``: (recovered, measured in words, the primary number as a Metric or (value, low, high));
    a _NotChecked raised by it makes the row "not checked" with its reason."""
    fields = {"effect": effect, "title": title, "expected": expected, "condition": condition, "probe": probe,
              "metric": metric, "group": group}
    try:
        recovered, measured, number = judge()
    except _NotChecked as reason:
        return SelfCheckRow(**fields, status="not checked", reason=str(reason))
    value, low, high = (number.value, number.ci_low, number.ci_high) if isinstance(number, Metric) else number
    return SelfCheckRow(**fields, value=value, ci_low=low, ci_high=high, measured=measured,
                        status="recovered" if recovered else "not recovered")


# --------------------------------------------------------------------------------------------------------- rows

def _fairness_gap_row(by_name, scenario: dict[str, Any]) -> SelfCheckRow:
    column, advantaged, disadvantaged = (scenario.get("group_column"), scenario.get("advantaged_group"),
                                         scenario.get("disadvantaged_group"))
    positive = scenario.get("positive_label_name") or "the positive label"
    forward = f"{column}={advantaged} vs {column}={disadvantaged}"  # group_metrics names a gap "group vs reference"
    backward = f"{column}={disadvantaged} vs {column}={advantaged}"

    def judge():
        _bias_planted(scenario)
        result = _ran(by_name, "group_metrics")
        if _has(result, "selection_rate_gap", backward) and not _has(result, "selection_rate_gap", forward):
            # the advantaged group was the reference: the gap is measured the other way round
            gap = _interval(result, "selection_rate_gap", backward)
            value, low, high = -gap.value, -gap.ci_high, -gap.ci_low
        else:
            gap = _interval(result, "selection_rate_gap", forward)
            value, low, high = gap.value, gap.ci_low, gap.ci_high
        measured = f"selection-rate gap {advantaged} − {disadvantaged} {_with_ci(value, low, high)}"
        return low > 0, measured, (value, low, high)

    return _row(
        "planted_fairness_gap", "Planted fairness gap",
        f"{_share(scenario.get('flip_rate'))} of the {disadvantaged} group's '{positive}' training labels were "
        f"flipped, so the model selects {advantaged} applicants more often than {disadvantaged} ones",
        f"95% CI of the selection-rate gap ({advantaged} − {disadvantaged}) above 0",
        "group_metrics", "selection_rate_gap", forward, judge)


def _counterfactual_row(by_name, scenario: dict[str, Any]) -> SelfCheckRow:
    column = scenario.get("group_column")

    def judge():
        _bias_planted(scenario)
        flips = _interval(_ran(by_name, "counterfactual"), "flip_rate", column)
        measured = f"flip rate {_with_ci(flips.value, flips.ci_low, flips.ci_high)} over {flips.n} counterfactual pairs"
        return flips.ci_low > 0, measured, flips

    return _row(
        "counterfactual_flips", "Counterfactual flips",
        f"the model learned to treat the {column} groups differently, so swapping only the {column} words of a "
        "text changes some decisions", f"95% CI of the {column} flip rate above 0",
        "counterfactual", "flip_rate", column, judge)


def _identity_attribution_row(by_name, scenario: dict[str, Any]) -> SelfCheckRow:
    column = scenario.get("group_column")

    def judge():
        _bias_planted(scenario)
        result = _ran(by_name, "identity_attribution")
        category = result.config.get("category")
        if category is not None and category != column:
            raise _NotChecked(f"identity_attribution measured the {category!r} identity words, not the planted "
                              f"group column {column!r}")
        share = _interval(result, "identity_attribution_share")
        words = result.metric("identity_token_fraction") if _has(result, "identity_token_fraction") else None
        if words is None or words.value is None:
            raise _NotChecked("identity_attribution reported no identity_token_fraction (the even-spread baseline)")
        return share.ci_low > words.value, (
            f"share of attribution on {column} words {_with_ci(share.value, share.ci_low, share.ci_high)}; "
            f"share of words that are {column} words {words.value:.3f}"), share

    return _row(
        "identity_attribution", "Identity attribution",
        f"decisions rest partly on the {column} words, so they carry more of the explanation weight than their "
        "share of the words", "95% CI lower bound of the identity attribution share above the identity token "
        "fraction (an even spread)", "identity_attribution", "identity_attribution_share", None, judge)


def _membership_row(by_name) -> SelfCheckRow:
    def judge():
        auc = _interval(_ran(by_name, "membership"), "max_auc")
        return auc.ci_low > 0.5, f"strongest attack's AUC {_with_ci(auc.value, auc.ci_low, auc.ci_high)}", auc

    return _row(
        "membership", "Membership inference",
        "the classifier was fine-tuned on the scenario's training split, so its training examples can be told from "
        "held-out ones better than chance", "95% CI lower bound of the best attack's AUC above 0.5",
        "membership", "max_auc", None, judge)


def _exposure_row(by_name, canary_repeats: tuple[int, ...]) -> SelfCheckRow:
    planted_counts = sorted((count for count in set(canary_repeats) if count > 0), reverse=True)
    ordered = planted_counts[:2]  # the largest two counts, e.g. 16 and 4 of 1, 4, 16
    chain = " > ".join([f"{count}×" for count in ordered] + ["controls"])
    top = ordered[0] if ordered else 0

    def judge():
        if not ordered:
            raise _NotChecked("no canary was planted (the manifest holds controls only)")
        if 0 not in canary_repeats:
            raise _NotChecked("the canary manifest has no never-inserted controls to compare with")
        result = _ran(by_name, "exposure")
        means = {count: _interval(result, "exposure", exposure_group(count)) for count in [*ordered, 0]}
        chain_values = [means[count].value for count in [*ordered, 0]]
        in_order = all(high > low for high, low in pairwise(chain_values))
        separated = means[top].ci_low > means[0].ci_high
        measured = "; ".join(f"{'controls' if count == 0 else f'{count}×'} "
                             f"{_with_ci(means[count].value, means[count].ci_low, means[count].ci_high, 2)}"
                             for count in [*ordered, 0]) + " (mean exposure, bits)"
        return in_order and separated, measured, means[top]

    return _row(
        "canary_exposure", "Canary exposure",
        f"canaries planted {', '.join(f'{count}×' for count in sorted(planted_counts))} in the pretraining text "
        "are memorised more the more often they were seen, above never-inserted controls",
        f"mean exposure ordered {chain}, and the {top}× 95% CI above the controls' 95% CI",
        "exposure", "exposure", exposure_group(top), judge)


def _bias_planted(scenario: dict[str, Any]) -> None:
    """A scenario with no label flipped (a zero-bias control) has no effect to recover."""
    if not scenario.get("flip_rate"):
        raise _NotChecked("the scenario planted no bias (flip rate 0), so there is no effect to recover")


def _has(result: ProbeResult, name: str, group: str | None = None) -> bool:
    return any(metric.name == name and metric.group == group for metric in result.metrics)


def _share(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "a share"
