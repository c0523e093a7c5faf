"""Slow: Integrated Gradients' completeness on our own trained classifier with real data.

Fixture ``davidson_classifier_dir`` (tests/conftest.py): the `small` encoder pretrained on wiki_passages, fine-tuned
on the Davidson et al. (ICWSM 2017) tweets, abusive vs neither. IG's completeness gap |Σ attributions − (f(x) −
f(baseline))| (Sundararajan et al., ICML 2017, "completeness"; lower is better) must shrink as n_steps grows and
reach tolerance on every tweet with enough steps. That is a property of the method; how many steps are enough for
the last tweet is a property of one trained model and its arithmetic: on a CPU without AVX-512 (fp32), 1 of 32
tweets was still above tolerance at the default 50 steps (|delta| 0.25; mean 0.011), none at 100 (largest 0.034)
and 200 (largest 1.8e-4). So the default must hold for nearly all tweets and flag the rest, and 200 for all.
(On the calibration scenario's classifiers it does not converge: they fine-tune at a rate that sharpens attention
to one-hot weights, and the test in test_attribution_scenario.py records that as a strict xfail.)
"""

from __future__ import annotations

import pytest

from audit.data.task import TaskData
from audit.subject import ModelUnderAudit
from probes.base import ProbeContext, get_probe

pytestmark = pytest.mark.slow


def test_ig_delta_converges_on_our_davidson_classifier(davidson_classifier_dir):
    # The product path throughout: the `attributions` probe at its default tolerances, on the same 32 test tweets
    # at every step count.
    subject = ModelUnderAudit.from_pretrained(davidson_classifier_dir, device="cpu")
    task = TaskData.load(davidson_classifier_dir)
    texts = task.texts("test")[:32]
    results = {
        n_steps: get_probe("attributions")(
            {"texts": texts, "n_examples": len(texts), "n_steps": n_steps, "methods": ["integrated_gradients"]}
        ).execute(ProbeContext(subject=subject, seed=0, task=task))
        for n_steps in (2, 8, 50, 200)
    }
    assert all(result.status == "ok" for result in results.values()), [r.message for r in results.values()]
    mean_delta = {n: result.metric("ig_mean_abs_delta").value for n, result in results.items()}
    share_within = {n: result.metric("ig_share_within_tolerance").value for n, result in results.items()}
    assert mean_delta[200] < mean_delta[50] < mean_delta[8] < mean_delta[2], mean_delta

    default = results[50]
    assert share_within[50] >= 0.9, share_within
    flagged = share_within[50] < 1.0
    assert bool(default.warnings) == flagged, default.warnings  # a tweet above tolerance is always flagged

    converged = results[200]
    assert share_within[200] == 1.0, (mean_delta, share_within)
    assert not converged.warnings and any(f.level == "pass" for f in converged.findings)
