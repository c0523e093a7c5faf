"""Every shipped example policy gates the real probes' results: each rule finds its probe, metric and group.

The probes the policies name run for real (small settings) on a tiny classifier of ours fine-tuned on nothing,
with the calibration scenario as its task (the default audit's task, plus dp_audit's canaries): the metric names and group labels are the
ones the probes write, not ones a test copied from the policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import torch
from tiny_models import build_tokenizer, ours_config, save
from typer.testing import CliRunner

from audit.cli import app
from audit.data.scenarios import make_calibration_scenario
from audit.gate import evaluate_policy, load_policy
from audit.model import AuditTransformerForSequenceClassification
from audit.results import AuditResults, RunInfo
from audit.subject import ModelUnderAudit
from audit.train.audit_canaries import with_audit_canaries
from audit.train.config import AuditCanarySection
from probes.base import ProbeContext, derive_seed, get_probe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Small budgets: the metric names and groups a probe writes do not depend on them.
FAST_SETTINGS = {
    "group_metrics": {"n_resamples": 50},
    "counterfactual": {"n_bootstrap": 50, "max_examples": 60},
    "membership": {"attacks": ["loss"], "n_reference_models": 0, "n_bootstrap": 50},
    # a claim to check: this model was not trained with DP, so it has no accountant's ε of its own
    "dp_audit": {"claimed_epsilon": 8.0},
}


def _example_policies() -> list[Path]:
    paths = sorted(path for path in EXAMPLES.glob("*.toml") if "rule" in tomllib.loads(path.read_text("utf-8")))
    assert paths, "no example policy found"
    return paths


@pytest.fixture(scope="module")
def real_probe_results(tmp_path_factory) -> AuditResults:
    """The results of every probe any example policy names, run on a tiny classifier with the scenario task."""
    names = sorted({rule.probe for path in _example_policies() for rule in load_policy(path).rule})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AuditTransformerForSequenceClassification(ours_config(num_labels=2)).eval()
    directory = save(model, build_tokenizer(), tmp_path_factory.mktemp("example-policies") / "classifier")
    # audit canaries (as `finetune` adds them with data.audit_canaries) so that dp_audit has something to score
    task = with_audit_canaries(make_calibration_scenario(n_examples=200, bias_strength=0.5, seed=0),
                               AuditCanarySection(count=20))
    task.save(directory)
    subject = ModelUnderAudit.from_pretrained(directory)
    probes = []
    for name in names:
        # pretrained_dir: membership asks for it; with no reference models it is never loaded
        context = ProbeContext(subject=subject, seed=derive_seed(0, name), task=task, pretrained_dir=directory)
        probes.append(get_probe(name)(FAST_SETTINGS.get(name)).execute(context))
    return AuditResults(
        run=RunInfo(id="example-policies", started="2026-12-03T00:00:00+00:00", duration_s=1.0, seed=0, threads=1,
                    package_versions={}),
        subject=subject.info(),
        probes=probes,
    )


@pytest.mark.parametrize("policy_path", _example_policies(), ids=lambda path: path.name)
def test_example_policy_gates_real_probe_results(policy_path, real_probe_results, tmp_path):
    for result in real_probe_results.probes:
        assert result.status == "ok", f"{result.probe}: {result.status} {result.message}"
    # Every rule finds its metric (evaluate_policy raises PolicyError naming the rule otherwise) and is checked.
    verdicts = evaluate_policy(load_policy(policy_path), real_probe_results)
    assert all(verdict.observed is not None for verdict in verdicts), [v.message for v in verdicts]
    results_path = tmp_path / "results.json"
    results_path.write_text(real_probe_results.to_json(), encoding="utf-8")
    outcome = CliRunner().invoke(app, ["gate", str(results_path), "--policy", str(policy_path)])
    assert outcome.exit_code in (0, 1), outcome.output
