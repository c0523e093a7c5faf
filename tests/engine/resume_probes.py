"""Probes for the resume tests, importable in the test process and, as a probe plug-in, in a `run` subprocess.

Every run of a probe is counted in ``RUNS`` (this process) and, when ``RESUME_PROBE_LOG`` names a file, appended
to it as one line (any process), so a test can tell a reused result from a recomputed one. ``BlockingProbe`` waits
until the file named by its ``wait_for`` setting exists, so a test can kill a run while it waits.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from audit.results import Metric, Table
from probes.base import Probe, ProbeConfig

LOG_ENV = "RESUME_PROBE_LOG"
RUNS: Counter[str] = Counter()


def _count_run(name: str) -> None:
    RUNS[name] += 1
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")


class _Counted(Probe):
    family = "fairness"
    citation = "test probe"
    description = "a cheap real number from the subject"
    needs = frozenset({"classifier", "task"})

    class Config(ProbeConfig):
        scale: float = 1.0

    def run(self, ctx):
        _count_run(self.name)
        return self.measure(ctx)

    def measure(self, ctx):
        probabilities = ctx.subject.predict_proba(ctx.task.texts("test"))[:, ctx.task.positive_label]
        return self.new_result(
            metrics=[
                Metric(name="mean_positive", value=float(probabilities.mean()) * self.config.scale,
                       n=len(probabilities), ci_low=float(probabilities.min()), ci_high=float(probabilities.max())),
                Metric(name="seeded_draw", value=float(ctx.rng.normal())),
            ],
            tables=[Table(name="first", title="First probabilities", columns=["i", "p", "odd"],
                          rows=[[index, float(p), index % 2 == 1] for index, p in enumerate(probabilities[:5])])],
            per_example={"p": [float(p) for p in probabilities]},
        )


class FirstProbe(_Counted):
    name = "resume_first"


class SecondProbe(_Counted):
    name = "resume_second"


class LastProbe(_Counted):
    name = "resume_last"


class BlockingProbe(_Counted):
    """Waits (up to a minute) for the file named by ``wait_for`` before measuring."""

    name = "resume_blocker"

    class Config(ProbeConfig):
        wait_for: str = ""

    def measure(self, ctx):
        deadline = time.monotonic() + 60
        while self.config.wait_for and not Path(self.config.wait_for).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.config.wait_for} did not appear")
            time.sleep(0.05)
        return self.new_result(metrics=[Metric(name="seeded_draw", value=float(ctx.rng.normal()))])


class DatasetProbe(_Counted):
    """Reads a CSV through the data catalog (so the files it read are recorded) and counts its rows."""

    name = "resume_dataset"
    needs = frozenset()

    class Config(ProbeConfig):
        dataset: str = ""

    def measure(self, ctx):
        loaded = ctx.load_dataset(self.config.dataset)
        return self.new_result(metrics=[Metric(name="rows", value=float(loaded.dataset.num_rows))])


class FailingProbe(_Counted):
    name = "resume_failing"
    needs = frozenset()

    def measure(self, ctx):
        raise RuntimeError("deliberate failure")


PLUGIN_PROBES = [FirstProbe, SecondProbe, BlockingProbe, LastProbe]
ALL_PROBES = [*PLUGIN_PROBES, DatasetProbe, FailingProbe]
