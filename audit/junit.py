"""JUnit XML for CI systems: one test case per probe and one per policy rule.

Values, bounds and intervals go into the failure message and ``<properties>``, never into ``time`` (which holds
the probe's real duration), so CI dashboards show them where people look.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from audit.results import AuditResults, Verdict


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
        ET.SubElement(case, "failure", message=verdict.message, type="PolicyViolation").text = verdict.message
    elif not verdict.passed:
        ET.SubElement(case, "system-out").text = f"warning: {verdict.message}"


def junit_xml(results: AuditResults, verdicts: list[Verdict] | None = None) -> str:
    """The JUnit XML document for a run (probe statuses) and its policy verdicts."""
    verdicts = results.verdicts if verdicts is None else verdicts
    root = ET.Element("testsuites", name="rai-audit")
    probes = ET.SubElement(root, "testsuite", name="rai-audit.probes", tests=str(len(results.probes)),
                           failures="0", errors=str(sum(p.status == "error" for p in results.probes)),
                           skipped=str(sum(p.status == "skipped" for p in results.probes)))
    for result in results.probes:
        case = ET.SubElement(probes, "testcase", classname=f"rai_audit.{result.family}", name=result.probe,
                             time=f"{result.duration_s:.3f}")
        if result.status == "error":
            ET.SubElement(case, "error", message=result.message, type="ProbeError").text = result.message
        elif result.status == "skipped":
            ET.SubElement(case, "skipped", message=result.message)
    if verdicts:
        failed = sum(not v.passed and v.severity == "fail" for v in verdicts)
        suite = ET.SubElement(root, "testsuite", name="rai-audit.policy", tests=str(len(verdicts)),
                              failures=str(failed), errors="0", skipped="0")
        for verdict in verdicts:
            _verdict_case(suite, verdict)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
