"""JUnit XML for CI systems: one test case per probe and one per policy rule.

Values, bounds and intervals go into the failure message and ``<properties>``, never into ``time`` (which holds
the probe's real duration), so CI dashboards show them where people look.

Inconclusive (the evidence cannot decide; see ``probes.verdicts``) is written as JUnit's ``<skipped>`` with the
reason as its message: CI tools (GitHub, GitLab, Jenkins) show a skipped case as neither green nor red and list
its message, which is what "not decided" means, and a build with skipped cases still passes. A policy rule that
the policy makes fail when inconclusive (``inconclusive = "fail"``) is a ``<failure type="Inconclusive">``
instead. A probe case is skipped when its leading finding is inconclusive; its ``verdict`` property holds the
leading finding level in every case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from audit.results import FINDING_SEVERITY, AuditResults, ProbeResult, Verdict


def _number(value: float | None) -> str:
    return "not defined" if value is None else f"{value:.6g}"


def _verdict_case(suite: ET.Element, verdict: Verdict) -> None:
    case = ET.SubElement(suite, "testcase", classname="rai_audit.policy", name=verdict.rule, time="0")
    properties = ET.SubElement(case, "properties")
    for key, value in [("probe", verdict.probe), ("metric", verdict.metric), ("group", verdict.group or "all"),
                       ("statistic", verdict.statistic), ("observed", _number(verdict.observed)),
                       ("bound", f"{verdict.operator} {_number(verdict.bound)}"), ("severity", verdict.severity),
                       ("ci_low", _number(verdict.ci_low)), ("ci_high", _number(verdict.ci_high))]:
        ET.SubElement(properties, "property", name=key, value=value)
    if not verdict.passed and verdict.severity == "fail":
        kind = "Inconclusive" if verdict.inconclusive else "PolicyViolation"
        ET.SubElement(case, "failure", message=verdict.message, type=kind).text = verdict.message
    elif verdict.inconclusive:
        ET.SubElement(case, "skipped", message=verdict.message)
    elif not verdict.passed:
        ET.SubElement(case, "system-out").text = f"warning: {verdict.message}"


def _leading_level(result: ProbeResult) -> str:
    return max((finding.level for finding in result.findings), key=FINDING_SEVERITY.get, default="info")


def _probe_skipped_message(result: ProbeResult) -> str | None:
    """Why the probe's case is skipped: its status, or the inconclusive findings when one leads."""
    if result.status == "skipped":
        return result.message
    if result.status == "ok" and _leading_level(result) == "inconclusive":
        return "inconclusive: " + " ".join(f.message for f in result.findings if f.level == "inconclusive")
    return None


def junit_xml(results: AuditResults, verdicts: list[Verdict] | None = None) -> str:
    """The JUnit XML document for a run (probe statuses) and its policy verdicts."""
    verdicts = results.verdicts if verdicts is None else verdicts
    root = ET.Element("testsuites", name="rai-audit")
    skipped = {result.probe: _probe_skipped_message(result) for result in results.probes}
    probes = ET.SubElement(root, "testsuite", name="rai-audit.probes", tests=str(len(results.probes)),
                           failures="0", errors=str(sum(p.status == "error" for p in results.probes)),
                           skipped=str(sum(message is not None for message in skipped.values())))
    for result in results.probes:
        case = ET.SubElement(probes, "testcase", classname=f"rai_audit.{result.family}", name=result.probe,
                             time=f"{result.duration_s:.3f}")
        if result.status == "ok":
            properties = ET.SubElement(case, "properties")
            ET.SubElement(properties, "property", name="verdict", value=_leading_level(result))
        if result.status == "error":
            ET.SubElement(case, "error", message=result.message, type="ProbeError").text = result.message
        elif skipped[result.probe] is not None:
            ET.SubElement(case, "skipped", message=skipped[result.probe])
    if verdicts:
        failed = sum(not v.passed and v.severity == "fail" for v in verdicts)
        undecided = sum(v.inconclusive and v.severity != "fail" for v in verdicts)
        suite = ET.SubElement(root, "testsuite", name="rai-audit.policy", tests=str(len(verdicts)),
                              failures=str(failed), errors="0", skipped=str(undecided))
        for verdict in verdicts:
            _verdict_case(suite, verdict)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
