"""An example rai-audit probe plug-in: calibration in the large, overall and per group.

For a classifier, the mean predicted probability of the positive label minus the share of examples that carry it,
on the held-out split: positive means the model over-predicts the positive decision, negative that it
under-predicts it; 0 is ideal. Computed per group as well, a group whose gap differs from the others' is one for
which the model's scores are not calibrated (Kleinberg, Mullainathan & Raghavan, ITCS 2017; Pleiss et al.,
NeurIPS 2017: calibration within groups). Limits: a mean over a group can hide over- and under-prediction that
cancel out; a reliability diagram per group shows more.
"""

from __future__ import annotations

import numpy as np

from audit.results import Finding, Metric
from probes.base import FROM_DATA, BootstrapResamples, Probe, ProbeConfig, ProbeSkipped, declare
from probes.stats import bootstrap_mean_ci


class CalibrationInTheLargeProbe(Probe):
    name = "calibration_in_the_large"
    version = "1"
    family = "fairness"
    citation = (
        "Kleinberg, Mullainathan & Raghavan, Inherent Trade-Offs in the Fair Determination of Risk Scores, "
        "ITCS 2017; Pleiss et al., On Fairness and Calibration, NeurIPS 2017"
    )
    description = "Mean predicted positive probability minus the observed positive rate, overall and per group"
    needs = frozenset({"classifier", "task"})
    how_to_read = (
        "A gap above 0 means the model scores the positive decision more likely than it is in the data; below 0, "
        "less likely. Closer to 0 is better, and similar gaps across groups mean the scores read the same for "
        "every group."
    )
    # Written once without a group (all examples) and once per group, named from the task data ("gender=female").
    metrics = declare({"calibration_gap": FROM_DATA})

    class Config(ProbeConfig):
        split: str = "test"
        tolerance: float = 0.05  # |gap| the interval must stay within for a pass
        n_resamples: BootstrapResamples = 1000

    def run(self, ctx):
        task = ctx.task
        positive = task.positive_label
        observed = (np.asarray(task.labels(self.config.split)) == positive).astype(float)
        if observed.size == 0:
            raise ProbeSkipped(f"the task data have no {self.config.split!r} examples")
        probabilities = ctx.subject.predict_proba(task.texts(self.config.split))[:, positive]
        differences = probabilities - observed  # their mean is the gap

        subsets = [(None, np.ones(len(differences), dtype=bool))]
        for column in task.group_columns:
            values = np.asarray(task.groups(self.config.split, column))
            subsets += [(f"{column}={value}", values == value) for value in sorted(set(values))]

        metrics, findings = [], []
        for group, selected in subsets:
            interval = bootstrap_mean_ci(differences[selected], rng=ctx.rng, n_resamples=self.config.n_resamples)
            metrics.append(Metric(name="calibration_gap", value=interval.value, ci_low=interval.low,
                                  ci_high=interval.high, target=0.0, n=int(selected.sum()), group=group,
                                  description="mean predicted positive probability − observed positive rate"))
            inside = -self.config.tolerance <= interval.low and interval.high <= self.config.tolerance
            findings.append(Finding(
                level="pass" if inside else "warn", metric="calibration_gap",
                message=f"{group or 'all examples'}: calibration gap {interval.value:+.3f} "
                        f"[{interval.low:+.3f}, {interval.high:+.3f}] "
                        f"({'within' if inside else 'not shown within'} ±{self.config.tolerance})"))
        return self.new_result(metrics=metrics, findings=findings)
