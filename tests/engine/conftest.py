"""A tiny classifier of ours with split membership, and probes registered only for the engine tests."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_tokenizer, ours_config, save

from audit.data.scenarios import make_calibration_scenario
from audit.model import AuditTransformerForSequenceClassification
from probes import base
from probes.base import NO_GROUP, Probe, ProbeConfig, declare, register


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = AuditTransformerForSequenceClassification(ours_config(num_labels=2)).eval()
    directory = save(model, build_tokenizer(), tmp_path_factory.mktemp("engine") / "classifier")
    make_calibration_scenario(n_examples=60, bias_strength=0.5, seed=0).save(directory)
    return directory


class ConstantProbe(Probe):
    """Reports the mean predicted probability of the positive class on the test split (a real, cheap number)."""

    name = "engine_constant"
    family = "fairness"
    citation = "test probe"
    description = "mean positive probability"
    needs = frozenset({"classifier", "task"})
    metrics = declare({"mean_positive": NO_GROUP, "seeded_draw": NO_GROUP})

    class Config(ProbeConfig):
        scale: float = 1.0

    def run(self, ctx):
        from audit.results import Metric

        probabilities = ctx.subject.predict_proba(ctx.task.texts("test"))[:, ctx.task.positive_label]
        jitter = ctx.rng.normal()  # seeded per probe: identical across runs with the same seed
        return self.new_result(metrics=[
            Metric(name="mean_positive", value=float(probabilities.mean()) * self.config.scale, n=len(probabilities)),
            Metric(name="seeded_draw", value=float(jitter)),
        ])


class RaisingProbe(Probe):
    name = "engine_raising"
    family = "bias"
    citation = "test probe"
    description = "always raises"

    def run(self, ctx):
        raise RuntimeError("deliberate failure <b>inside</b> a probe")


class NeedsMlmProbe(Probe):
    name = "engine_needs_mlm"
    family = "bias"
    citation = "test probe"
    description = "needs a masked-LM head"
    needs = frozenset({"mlm"})

    def run(self, ctx):  # pragma: no cover - must be skipped on a classifier-only model
        raise AssertionError("should have been skipped")


@pytest.fixture
def engine_probes():
    added = [ConstantProbe, RaisingProbe, NeedsMlmProbe]
    base.available_probes()  # load built-ins first so that ours are additions
    for probe in added:
        register(probe)
    yield [probe.name for probe in added]
    for probe in added:
        base._REGISTRY.pop(probe.name, None)


@pytest.fixture
def no_work(monkeypatch):
    """Any start of real work (an audit, training, a model load) fails the test: bad input must be caught first."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    for target in ("audit.runner.run_audit", "audit.runner.resolve_subject", "audit.train.pretrain.pretrain",
                   "audit.train.finetune.run_finetune", "audit.subject.ModelUnderAudit.from_pretrained"):
        monkeypatch.setattr(target, refuse)
