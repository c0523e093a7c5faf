"""Release gating: a policy file of rules over probe metrics → verdicts, exit codes, JUnit and Markdown.

A policy (TOML) holds rules::

    [[rule]]
    name = "gender demographic-parity gap"
    probe = "group_metrics"
    metric = "demographic_parity_difference"
    group = "gender"            # optional; matches Metric.group
    max = 0.10                  # and/or min
    statistic = "ci_high"       # value | ci_low | ci_high; default: the conservative bound for the direction
    severity = "fail"           # fail (exit 1) | warn

    [[rule]]
    name = "no regression in flip rate"
    probe = "counterfactual"
    metric = "flip_rate"
    group = "gender"
    no_regression = true        # against --baseline: fails only on a statistically significant worsening

The default statistic is conservative: a ``max`` bound is tested on the upper end of the 95% interval and a
``min`` bound on the lower end, so a thin sample (wide interval) cannot pass by luck — and the verdict is
deterministic, never re-sampled at gate time. A rule that matches no metric is an input error, not a pass.

Three outcomes (``probes.verdicts``): with the conservative statistic a rule passes when the whole interval is
within the bound, fails when the whole interval breaks it, and is **inconclusive** when the interval reaches
across the bound; a rule on a metric its probe marked inconclusive (``Metric.inconclusive_reason``, e.g. a
language model that cannot tell meaningful text from meaningless) is inconclusive too. What an inconclusive rule
does is the policy's choice, top level or per rule::

    inconclusive = "warn"       # default: reported as inconclusive (table, Markdown, JUnit), exit code unaffected
    # inconclusive = "fail"     # an inconclusive "fail" rule fails the gate (exit 1)

Either way an inconclusive rule never reads as a pass.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audit.errors import InputError
from audit.results import AuditResults, Metric, ProbeResult, Verdict, load_results
from audit.terminal import printable
from audit.validation import describe_validation_error, read_toml_file

if TYPE_CHECKING:
    from probes.base import Groups, Probe

Statistic = Literal["value", "ci_low", "ci_high"]
InconclusivePolicy = Literal["fail", "warn"]


class PolicyError(InputError):
    """A policy that cannot be applied: malformed TOML, an unknown key, probe or metric (with a suggestion)."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    probe: str
    metric: str
    group: str | None = None
    # Bounds are finite numbers: `max = nan` would fail every comparison and `inf` pass every one.
    max: float | None = Field(None, allow_inf_nan=False)
    min: float | None = Field(None, allow_inf_nan=False)
    statistic: Statistic | None = None
    severity: Literal["fail", "warn"] = "fail"
    no_regression: bool = False
    inconclusive: InconclusivePolicy | None = None  # overrides the policy's setting for this rule

    @model_validator(mode="after")
    def _has_a_test(self) -> Rule:
        if self.max is None and self.min is None and not self.no_regression:
            raise ValueError("a rule needs max, min or no_regression = true")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min = {self.min:g} is above max = {self.max:g}; no value could pass; "
                             "expected min <= max")
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inconclusive: InconclusivePolicy = "warn"
    rule: list[Rule] = Field(min_length=1)


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    data = read_toml_file(path, error=PolicyError, expected="a TOML policy with [[rule]] tables")
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        raise PolicyError(describe_validation_error(error, str(path))) from None


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(set(options))) or 'none'}"


def check_rules_against_probes(policy: Policy, probes: Sequence[Probe]) -> None:
    """Before an audit: each rule must name a probe the audit runs and a metric (and group) it declares.

    A PolicyError names the rule and what the probe does write. A rule of severity "warn" may name a probe
    the audit does not run (it becomes a warning); a "fail" rule could then only fail, so it is refused. A
    probe that declares no metrics (a plug-in) is checked after the run, against its results.
    """
    from probes.base import available_probes

    selected = {probe.name: probe for probe in probes}
    for rule in policy.rule:
        probe = selected.get(rule.probe)
        if probe is None:
            known = sorted(available_probes())
            if rule.probe not in known:
                raise PolicyError(f"rule {rule.name!r}: unknown probe {rule.probe!r}"
                                  f"{_suggest(rule.probe, known)}")
            if rule.severity == "fail":
                raise PolicyError(f"rule {rule.name!r}: probe {rule.probe!r} is not among this audit's "
                                  f"probes ({', '.join(selected) or 'none'}), so the rule could only fail; "
                                  "add the probe or remove the rule")
            continue
        declared = probe.declared_metrics()
        if declared is None:
            continue
        if rule.metric not in declared:
            raise PolicyError(f"rule {rule.name!r}: probe {rule.probe!r} has no metric {rule.metric!r}"
                              f"{_metric_hint(rule.metric, declared)}; its metrics: {', '.join(declared)}")
        groups = declared[rule.metric]
        if groups is not None and rule.group not in groups:
            raise PolicyError(f"rule {rule.name!r}: metric {rule.metric!r} of probe {rule.probe!r} has no "
                              f"{'overall value' if rule.group is None else f'group {rule.group!r}'}; "
                              f"expected group {_groups_text(groups)}")


def _metric_hint(metric: str, declared: dict[str, Groups]) -> str:
    """For a name like "auc_loss": the declared metric "auc" written with group "loss"."""
    for name, groups in declared.items():
        group = metric[len(name) + 1:] if metric.startswith(f"{name}_") else None
        if group and groups is not None and group in groups:
            return f" (did you mean metric {name!r} with group {group!r}?)"
    close = difflib.get_close_matches(metric, list(declared), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _groups_text(groups: frozenset[str | None]) -> str:
    named = sorted(group for group in groups if group is not None)
    options = [*(repr(group) for group in named), *(["none (omit `group`)"] if None in groups else [])]
    return " or ".join(options) if len(options) < 3 else "one of " + ", ".join(options)


def _find_probe(rule: Rule, results: AuditResults) -> ProbeResult | None:
    """The probe's result; None when it is registered but did not run; PolicyError when unknown."""
    for result in results.probes:
        if result.probe == rule.probe:
            return result
    from probes.base import available_probes

    known = sorted({result.probe for result in results.probes} | set(available_probes()))
    if rule.probe in known:
        return None
    raise PolicyError(f"rule {rule.name!r}: unknown probe {rule.probe!r}{_suggest(rule.probe, known)}")


def _find_metric(rule: Rule, result: ProbeResult) -> Metric:
    for metric in result.metrics:
        if metric.name == rule.metric and metric.group == rule.group:
            return metric
    names = sorted({metric.name for metric in result.metrics})
    if rule.metric not in names:
        raise PolicyError(f"rule {rule.name!r}: probe {rule.probe!r} has no metric {rule.metric!r}"
                          f"{_suggest(rule.metric, names)}")
    groups = sorted({str(metric.group) for metric in result.metrics if metric.name == rule.metric})
    raise PolicyError(f"rule {rule.name!r}: metric {rule.metric!r} has no group {rule.group!r}"
                      f"{_suggest(str(rule.group), groups)}")


def _conservative(bound_is_max: bool) -> Statistic:
    """The end of the interval a bound is tested on by default: the upper end for a max, the lower for a min."""
    return "ci_high" if bound_is_max else "ci_low"


def _statistic(rule: Rule, bound_is_max: bool) -> Statistic:
    return rule.statistic or _conservative(bound_is_max)


def _observed(metric: Metric, statistic: Statistic) -> float | None:
    value = getattr(metric, statistic)
    return metric.value if value is None and statistic != "value" else value  # no CI: fall back to the estimate


def _bound_verdicts(rule: Rule, metric: Metric, inconclusive: InconclusivePolicy) -> list[Verdict]:
    verdicts = []
    for bound, is_max in ((rule.max, True), (rule.min, False)):
        if bound is None:
            continue
        statistic = _statistic(rule, is_max)
        observed = _observed(metric, statistic)
        operator = "<=" if is_max else ">="
        outcome = "fail"
        if observed is None:
            message = f"{rule.metric} is not defined ({metric.undefined_reason or 'no value'})"
        else:
            outcome = _outcome(metric, observed, bound, is_max=is_max, statistic=statistic)
            said = {"pass": "within", "fail": "breaks", "inconclusive": "undecided against"}[outcome]
            message = (f"{rule.metric}{f' [{metric.group}]' if metric.group else ''}: {statistic} "
                       f"{observed:.4g} {said} {operator} {bound:g} "
                       f"(value {metric.value if metric.value is None else f'{metric.value:.4g}'}, "
                       f"95% CI {_interval_text(metric)})")
            if outcome == "inconclusive":
                reason = metric.inconclusive_reason or "the interval reaches across the bound"
                message += f"; inconclusive: {reason} (policy: inconclusive = {inconclusive!r})"
        severity = rule.severity if outcome != "inconclusive" or inconclusive == "fail" else "warn"
        verdicts.append(Verdict(rule=rule.name, probe=rule.probe, metric=rule.metric, group=rule.group,
                                statistic=statistic, observed=observed, bound=bound, operator=operator,
                                severity=severity, passed=outcome == "pass", message=message,
                                inconclusive=outcome == "inconclusive", ci_low=metric.ci_low, ci_high=metric.ci_high))
    return verdicts


def _outcome(metric: Metric, observed: float, bound: float, *, is_max: bool, statistic: Statistic) -> str:
    """pass / fail / inconclusive for one bound: inconclusive when the probe marked the metric so; with the
    conservative statistic and an interval, the equivalence verdict of the interval against the bound; otherwise
    (``statistic = "value"`` or the other end, as the policy asked, or no interval) the observed number alone."""
    from probes.verdicts import Band, equivalence_outcome

    if metric.inconclusive_reason:
        return "inconclusive"
    if statistic == _conservative(is_max) and metric.ci_low is not None and metric.ci_high is not None:
        return equivalence_outcome(metric.ci_low, metric.ci_high, Band(None, bound) if is_max else Band(bound, None))
    return "pass" if (observed <= bound if is_max else observed >= bound) else "fail"


def _interval_text(metric: Metric) -> str:
    if metric.ci_low is None or metric.ci_high is None:
        return "n/a"
    return f"[{metric.ci_low:.4g}, {metric.ci_high:.4g}]"


def _regression_verdict(rule: Rule, metric: Metric, result: ProbeResult, baseline: AuditResults | None,
                        seed: int) -> Verdict:
    """Significant worsening against the baseline: paired bootstrap on per-example values when both runs stored
    them under the metric's name, otherwise non-overlapping 95% intervals."""
    common = {"rule": rule.name, "probe": rule.probe, "metric": rule.metric, "group": rule.group,
              "statistic": "value", "operator": "no-regression", "severity": rule.severity,
              "ci_low": metric.ci_low, "ci_high": metric.ci_high}
    if baseline is None:
        raise PolicyError(f"rule {rule.name!r} asks for no regression but no --baseline results.json was given")
    base_result = next((p for p in baseline.probes if p.probe == rule.probe), None)
    if base_result is None:
        raise PolicyError(f"rule {rule.name!r}: the baseline has no probe {rule.probe!r}")
    base_metric = _find_metric(rule, base_result)
    if metric.value is None or base_metric.value is None:
        return Verdict(observed=metric.value, bound=base_metric.value, passed=False,
                       message=f"{rule.metric} is not defined in this run or the baseline", **common)
    worse_sign = -1.0 if metric.higher_is_better else 1.0  # higher_is_better None/False: an increase is worse
    paired = _paired_difference(rule.metric, result, base_result, seed)
    if paired is not None:
        low, high = paired
        method = "paired bootstrap"
    else:
        low = (metric.ci_low if metric.ci_low is not None else metric.value) - (
            base_metric.ci_high if base_metric.ci_high is not None else base_metric.value)
        high = (metric.ci_high if metric.ci_high is not None else metric.value) - (
            base_metric.ci_low if base_metric.ci_low is not None else base_metric.value)
        method = "interval overlap"
    regressed = (low > 0) if worse_sign > 0 else (high < 0)
    message = (f"{rule.metric}: {metric.value:.4g} vs baseline {base_metric.value:.4g}; difference interval "
               f"[{low:.4g}, {high:.4g}] ({method}) — {'significant regression' if regressed else 'no significant regression'}")
    return Verdict(observed=metric.value, bound=base_metric.value, passed=not regressed, message=message, **common)


def _paired_difference(name: str, current: ProbeResult, base: ProbeResult, seed: int):
    """95% paired-bootstrap interval of mean(current - base) over shared example ids, or None."""
    ids_now, ids_base = current.per_example.get("example_ids"), base.per_example.get("example_ids")
    values_now, values_base = current.per_example.get(name), base.per_example.get(name)
    if not (ids_now and ids_base and values_now and values_base):
        return None
    base_by_id = dict(zip(ids_base, values_base))
    pairs = [(float(v), float(base_by_id[i])) for i, v in zip(ids_now, values_now)
             if i in base_by_id and v is not None and base_by_id[i] is not None]
    if len(pairs) < 10:
        return None
    from probes.stats import paired_bootstrap_diff

    now, before = np.array(pairs).T
    interval, _ = paired_bootstrap_diff(now, before, rng=np.random.default_rng(seed))
    return interval.low, interval.high


def evaluate_policy(policy: Policy, results: AuditResults, *, baseline: AuditResults | None = None) -> list[Verdict]:
    """Verdicts for every rule, in policy order. Deterministic for the same inputs."""
    verdicts: list[Verdict] = []
    for rule in policy.rule:
        result = _find_probe(rule, results)
        if result is None or result.status != "ok":
            reason = "did not run" if result is None else f"{result.status}: {result.message}"
            verdicts.append(Verdict(rule=rule.name, probe=rule.probe, metric=rule.metric, group=rule.group,
                                    statistic=rule.statistic or "value", observed=None,
                                    bound=rule.max if rule.max is not None else rule.min,
                                    operator="no-regression" if rule.no_regression else ("<=" if rule.max is not None else ">="),
                                    severity=rule.severity, passed=False,
                                    message=f"probe {rule.probe} {reason}; the rule cannot be checked"))
            continue
        metric = _find_metric(rule, result)
        verdicts.extend(_bound_verdicts(rule, metric, rule.inconclusive or policy.inconclusive))
        if rule.no_regression:
            verdicts.append(_regression_verdict(rule, metric, result, baseline, results.run.seed))
    return verdicts


def verdicts_markdown(verdicts: list[Verdict]) -> str:
    """A Markdown table for $GITHUB_STEP_SUMMARY (values are escaped for table cells)."""

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    failed = sum(not v.passed and v.severity == "fail" for v in verdicts)
    undecided = sum(v.inconclusive for v in verdicts)
    heading = (f"### rai-audit gate: {'FAILED' if failed else 'passed'} ({len(verdicts)} rules, {failed} failing"
               f"{f', {undecided} inconclusive' if undecided else ''})")
    lines = [heading,
             "", "| rule | result | metric | observed | bound |", "|---|---|---|---|---|"]
    for v in verdicts:
        outcome = verdict_outcome(v)
        observed = "n/a" if v.observed is None else f"{v.observed:.4g}"
        bound = "n/a" if v.bound is None else f"{v.operator} {v.bound:.4g}"
        lines.append(f"| {cell(v.rule)} | {outcome} | {cell(v.probe)}/{cell(v.metric)} | {observed} | {bound} |")
    return "\n".join(lines) + "\n"


def verdict_outcome(verdict: Verdict) -> str:
    """How a verdict reads: "pass", "fail", "warn", or "inconclusive" (with "(fails the gate)" when the policy
    makes it fail)."""
    if verdict.passed:
        return "pass"
    if verdict.inconclusive:
        return "inconclusive (fails the gate)" if verdict.severity == "fail" else "inconclusive"
    return verdict.severity


def run_gate(results_path: Path, policy_path: Path, *, baseline: Path | None = None, junit_path: Path | None = None,
             output_format: str = "table") -> int:
    """The ``rai-audit gate`` command: returns the exit code (0 pass, 1 a fail rule broken)."""
    from audit.junit import junit_xml
    from audit.outputs import write_atomic

    if output_format not in ("table", "json"):
        raise PolicyError(f"--format {output_format!r}: expected 'table' or 'json'")
    policy = load_policy(policy_path)
    results = load_results(results_path)
    baseline_results = load_results(baseline) if baseline else None
    verdicts = evaluate_policy(policy, results, baseline=baseline_results)
    if junit_path is not None:
        write_atomic(junit_path, junit_xml(results, verdicts))
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as handle:
            handle.write(verdicts_markdown(verdicts))
    if output_format == "json":
        print(json.dumps([verdict.model_dump(mode="json") for verdict in verdicts], indent=2))
    else:
        _print_verdicts(verdicts)
    return 1 if any(not v.passed and v.severity == "fail" for v in verdicts) else 0


def _print_verdicts(verdicts: list[Verdict]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="rai-audit gate")
    for column in ("rule", "result", "metric", "observed", "bound", "message"):
        table.add_column(column)
    def text(value: str) -> str:  # from the results or the policy: neither markup nor terminal control codes
        return escape(printable(value))

    for v in verdicts:
        outcome = verdict_outcome(v)
        outcome = {"pass": "[green]pass[/green]", "fail": "[red]FAIL[/red]", "warn": "[yellow]warn[/yellow]"}.get(
            outcome, f"[{'red' if v.severity == 'fail' else 'magenta'}]{outcome}[/]")
        table.add_row(text(v.rule), outcome, text(f"{v.probe}/{v.metric}" + (f" [{v.group}]" if v.group else "")),
                      "n/a" if v.observed is None else f"{v.observed:.4g}",
                      "n/a" if v.bound is None else f"{v.operator} {v.bound:.4g}", text(v.message))
    Console(width=160).print(table)
