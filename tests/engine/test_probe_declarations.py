"""Probes declare the metrics (and groups) they write, so `run --policy` can check rules before an audit; the
declarations must be true: every probe run in the test suite checks its metrics against them (Probe.execute)."""

from __future__ import annotations

import logging
import os

import pytest

from audit.results import Metric
from probes.base import (
    CHECK_DECLARATIONS_ENV,
    FROM_DATA,
    NO_GROUP,
    Probe,
    ProbeContext,
    UndeclaredMetricError,
    available_probes,
    declare,
)

BUILTIN = {name: probe for name, probe in available_probes().items() if probe.__module__.startswith("probes.")}


def test_the_test_suite_checks_every_probe_run_against_its_declarations():
    assert os.environ.get(CHECK_DECLARATIONS_ENV), "tests/conftest.py must switch the check on"


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_probe_declares_its_metrics(name):
    probe_class = BUILTIN[name]
    assert probe_class.metrics, f"{name} declares no metrics"
    declared = probe_class().declared_metrics()  # with the default config: within what the class declares
    assert declared and set(declared) <= set(probe_class.metrics)
    for metric, groups in declared.items():
        class_groups = probe_class.metrics[metric]
        assert class_groups is FROM_DATA or (groups is not FROM_DATA and groups <= class_groups), metric


class WritesWhatItIsTold(Probe):
    name = "declarations_test"
    family = "bias"
    citation = "test probe"
    description = "writes the metrics given to it"
    metrics = declare({"declared": NO_GROUP, "per_method": frozenset({"a", "b"}), "per_group": FROM_DATA})

    def __init__(self, written: list[Metric]) -> None:
        super().__init__()
        self.written = written

    def run(self, ctx):
        return self.new_result(metrics=self.written)


@pytest.mark.parametrize("written, undeclared", [
    ([Metric(name="declared", value=0.5), Metric(name="per_method", value=0.5, group="a"),
      Metric(name="per_group", value=0.5, group="any")], []),
    ([Metric(name="undeclared", value=0.5)], ["undeclared [None]"]),
    ([Metric(name="per_method", value=0.5, group="c")], ["per_method [c]"]),
    ([Metric(name="declared", value=0.5, group="a")], ["declared [a]"]),
    ([Metric(name="per_method", value=0.5)], ["per_method [None]"]),
])
def test_undeclared_metrics_and_groups_are_caught(written, undeclared):
    probe = WritesWhatItIsTold(written)
    context = ProbeContext(subject=None, seed=0)
    if undeclared:
        with pytest.raises(UndeclaredMetricError, match="declarations_test"):
            probe.execute(context)
    else:
        assert probe.execute(context).status == "ok"
    assert probe.undeclared_metrics(probe.new_result(metrics=written)) == undeclared


def test_outside_the_tests_an_undeclared_metric_is_a_warning(monkeypatch, caplog):
    monkeypatch.delenv(CHECK_DECLARATIONS_ENV)
    with caplog.at_level(logging.WARNING, logger="probes.base"):
        probe = WritesWhatItIsTold([Metric(name="undeclared", value=0.5)])
        result = probe.execute(ProbeContext(subject=None, seed=0))
    assert result.status == "ok" and [metric.name for metric in result.metrics] == ["undeclared"]
    assert "undeclared metric(s): undeclared [None]" in caplog.text
