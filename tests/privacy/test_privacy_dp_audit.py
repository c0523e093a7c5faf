"""The dp_audit probe: known answers with a fake subject (fast) and with DP-SGD-trained tiny classifiers (slow).

Slow known answers (one session fixture trains every model once): without DP the canaries leak (bound > 0); with
DP at ε = 1 and ε = 8 the bound never exceeds the accountant's ε over 5 seeds; a planted bug that skips the
noise while the accountant still claims ε is caught as a violated claim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from privacy_helpers import noisy_rule_task

from audit.data.task import LabelledExample, TaskData
from audit.train.audit_canaries import with_audit_canaries
from audit.train.config import AuditCanarySection
from probes.base import ProbeContext, ProbeSkipped
from probes.privacy.dp_audit import DPAuditProbe


@dataclass
class _RecordingSubject:
    """A classifier that gives each text a fixed probability of its recorded label (a planted leak)."""

    label_probability: dict[str, tuple[int, float]]
    path: Path

    def logits(self, texts):
        rows = []
        for text in texts:
            label, probability = self.label_probability[text]
            row = np.full(2, np.log((1 - probability) + 1e-12))
            row[label] = np.log(probability)
            rows.append(row)
        return np.array(rows)


def _canary_task(m: int, seed: int = 0) -> TaskData:
    base = TaskData(name="t", label_names=["no", "yes"], examples=[
        LabelledExample(id=f"ex{i}", text=f"wa{i} wb{i} wc", label=i % 2, split="train") for i in range(20)])
    return with_audit_canaries(base, AuditCanarySection(count=m, length=6, seed=seed))


def _context(task, *, leak: float, tmp_path, claim: dict | None) -> ProbeContext:
    """Included canaries get probability ``leak`` on their label, excluded ones 1 - leak."""
    table = {e.text: (e.label, leak if e.split == "train" else 1 - leak) for e in task.examples}
    (tmp_path / "finetune.json").write_text(json.dumps({"dp": claim}), encoding="utf-8")
    return ProbeContext(subject=_RecordingSubject(table, tmp_path), seed=0, task=task)


@pytest.mark.parametrize(("sides", "expected"), [
    # Bonferroni over 4 guess counts × 2 sides (the default: both, out): q^100 = 0.05 / 8 (plus a small δ term),
    # q = 0.95051, ε = log(q / (1 - q)) = 2.955; δ = 1e-5 lowers it to 2.938.
    (None, 2.938),
    # × 3 sides: q^100 = 0.05 / 12, q = 0.94667, ε = 2.876, lowered to 2.854 by δ.
    (["both", "out", "in"], 2.854),
    # Bonferroni over 4 guess counts: q^100 = 0.0125, q = 0.95713, ε = log(22.33) = 3.106, lowered to ~3.10 by δ.
    (["both"], 3.10),
])
def test_a_planted_total_leak_violates_a_small_claim(tmp_path, sides, expected):
    """The best guesses are k = 100 (50 in, 50 out, or the 100 lowest scores all out), all right."""
    task = _canary_task(200)
    probe = DPAuditProbe({"guess_sides": sides} if sides else {})
    result = probe.run(_context(task, leak=0.99, tmp_path=tmp_path, claim={"epsilon": 1.0, "delta": 1e-5}))
    metrics = {metric.name: metric.value for metric in result.metrics}
    assert metrics["guess_accuracy"] == 1.0 and metrics["canary_auc"] == 1.0
    assert metrics["epsilon_lower_bound"] == pytest.approx(expected, abs=0.01)
    assert metrics["epsilon_lower_bound_minus_claimed"] > 0
    assert result.findings[0].level == "fail"


def test_when_half_the_excluded_canaries_look_included_guessing_out_alone_finds_the_leak(tmp_path):
    """Canaries whose random label the task's features predict score high whether trained on or not: here every
    included canary and the even-numbered excluded ones get 0.99, the other excluded ones 0.01. Only the bottom of
    the ranking is informative; the 'all out' guesses find a bound that half-in-half-out guesses cannot."""
    task = _canary_task(200)
    canaries = [e for e in task.examples if e.id.startswith("canary-")]
    table = {e.text: (e.label, 0.99 if e.split == "train" or int(e.id[-5:]) % 2 == 0 else 0.01) for e in canaries}
    table |= {e.text: (e.label, 0.5) for e in task.examples if e not in canaries}
    (tmp_path / "finetune.json").write_text(json.dumps({"dp": {"epsilon": 1.0, "delta": 1e-5}}), encoding="utf-8")
    context = ProbeContext(subject=_RecordingSubject(table, tmp_path), seed=0, task=task)
    both_only = DPAuditProbe({"guess_sides": ["both"]}).run(context)
    every_side = DPAuditProbe().run(context)
    best_row = max(every_side.tables[0].rows, key=lambda row: row[-1])
    assert best_row[0] == "all out" and best_row[2] == best_row[1]  # every "out" guess right
    assert every_side.metric("epsilon_lower_bound").value > 1.0 > both_only.metric("epsilon_lower_bound").value
    assert every_side.findings[0].level == "fail" and both_only.findings[0].level == "pass"


def test_no_leak_gives_no_bound_and_keeps_a_claim(tmp_path):
    task = _canary_task(200)
    result = DPAuditProbe().run(_context(task, leak=0.5, tmp_path=tmp_path, claim={"epsilon": 1.0, "delta": 1e-5}))
    metrics = {metric.name: metric.value for metric in result.metrics}
    assert metrics["epsilon_lower_bound"] == 0.0 and metrics["epsilon_lower_bound_minus_claimed"] == -1.0
    assert result.findings[0].level == "pass"


def test_without_a_claim_the_bound_is_information(tmp_path):
    result = DPAuditProbe().run(_context(_canary_task(60), leak=0.99, tmp_path=tmp_path, claim=None))
    assert result.findings[0].level == "info"
    assert "epsilon_lower_bound_minus_claimed" not in {metric.name for metric in result.metrics}


@pytest.mark.parametrize("claim", [{"epsilon": 1.0}, {"epsilon": "one", "delta": float("nan")},
                                   {"epsilon": float("inf"), "delta": 2.0}])
def test_a_dp_record_with_unusable_values_claims_nothing_it_cannot_and_takes_the_default_delta(tmp_path, claim):
    """A record without δ, or with values that are no finite numbers, neither crashes the probe nor sets a claim."""
    result = DPAuditProbe().run(_context(_canary_task(60), leak=0.99, tmp_path=tmp_path, claim=claim))
    bound = result.metric("epsilon_lower_bound")
    assert bound.value > 0 and "δ = 1e-05" in bound.description
    expected_claim = claim["epsilon"] if isinstance(claim["epsilon"], float) and claim["epsilon"] < 10 else None
    assert ("claimed_epsilon" in {metric.name for metric in result.metrics}) == (expected_claim is not None)


@pytest.mark.parametrize("fractions", [[], [0.0], [1.5]])
def test_guess_fractions_outside_zero_to_one_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions in"):
        DPAuditProbe({"guess_fractions": fractions})


def test_a_task_without_canaries_is_skipped(tmp_path):
    task = TaskData(name="t", label_names=["a", "b"], examples=[LabelledExample("x", "t", 0, "train")])
    with pytest.raises(ProbeSkipped, match="audit_canaries"):
        DPAuditProbe().run(ProbeContext(subject=None, seed=0, task=task))


def test_canaries_need_words_in_the_training_texts():
    from audit.train.errors import FinetuneDataError

    task = TaskData(name="t", label_names=["a", "b"], examples=[LabelledExample("x", " ", 0, "train")])
    with pytest.raises(FinetuneDataError, match="train split has no words"):
        with_audit_canaries(task, AuditCanarySection(count=4))


def test_canaries_are_a_seeded_fair_coin():
    first, again = _canary_task(400, seed=3), _canary_task(400, seed=3)
    assert first.examples == again.examples
    included = sum(e.split == "train" for e in first.examples if e.id.startswith("canary-"))
    assert 160 <= included <= 240  # Binomial(400, 1/2): mean 200, sd 10


def _with_reference_runs(monkeypatch, *, leak: bool) -> list[list[str]]:
    """Reference runs whose model predicts the first canary's label exactly when the run trained on it (``leak``),
    or never; returns the training-set ids of every run."""
    from probes.privacy import dp_audit

    trained_on: list[list[str]] = []

    def fine_tuned_logits(ctx, recipe, train, texts, *, seed_offset=0):
        trained_on.append([e.id for e in train])
        canary = next(e for e in ctx.task.examples if e.id == "canary-00000")
        predicted = canary.label if leak and any(e.id == canary.id for e in train) else 1 - canary.label
        return np.eye(2)[[predicted] * len(texts)]

    monkeypatch.setattr(dp_audit, "_fine_tuned_logits", fine_tuned_logits)
    return trained_on


def test_reference_runs_that_leak_the_canary_give_the_clopper_pearson_bound(tmp_path, monkeypatch):
    trained_on = _with_reference_runs(monkeypatch, leak=True)
    task = _canary_task(60)
    context = _context(task, leak=0.5, tmp_path=tmp_path, claim={"epsilon": 0.5, "delta": 1e-5})
    context.pretrained_dir, context.finetune_recipe = tmp_path, {"epochs": 1}
    result = DPAuditProbe({"reference_runs": 20}).run(context)
    # 10 of 10 runs with the canary predict its label, 0 of 10 without. Each method at 97.5%, each Clopper–Pearson
    # limit one-sided at 1.25%: TPR_lo = 0.0125^(1/10) = 0.64520, FPR_hi = 1 - TPR_lo = 0.35480,
    # ε ≥ log((0.64520 - 1e-5) / 0.35480) = 0.5980.
    tpr_low = 0.0125 ** 0.1
    expected = np.log((tpr_low - 1e-5) / (1 - tpr_low))
    assert result.metric("epsilon_lower_bound_reference_runs").value == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.5980, abs=1e-4)
    assert result.metric("epsilon_lower_bound").value == pytest.approx(expected, abs=1e-6)  # the one-run bound is 0
    assert result.findings[0].level == "fail" and "10 of 10 runs that trained on it" in result.findings[0].message
    canary_in = ["canary-00000" in ids for ids in trained_on]
    assert canary_in == [True, False] * 10
    base = {e.id for e in task.split("train")} - {"canary-00000"}
    assert all(set(ids) - {"canary-00000"} == base for ids in trained_on)


def test_reference_runs_that_do_not_leak_keep_the_claim_and_need_a_recipe(tmp_path, monkeypatch):
    _with_reference_runs(monkeypatch, leak=False)
    context = _context(_canary_task(60), leak=0.5, tmp_path=tmp_path, claim={"epsilon": 0.5, "delta": 1e-5})
    context.pretrained_dir, context.finetune_recipe = tmp_path, {"epochs": 1}
    result = DPAuditProbe({"reference_runs": 20}).run(context)
    assert result.metric("epsilon_lower_bound_reference_runs").value == 0.0
    assert result.findings[0].level == "pass"

    context.finetune_recipe = None
    result = DPAuditProbe({"reference_runs": 20}).run(context)
    assert "epsilon_lower_bound_reference_runs" not in {metric.name for metric in result.metrics}
    assert any("reference_runs needs the recipe" in warning for warning in result.warnings)


@pytest.mark.parametrize("runs", [2, 3, -2])
def test_reference_runs_must_be_an_even_number_of_at_least_four(runs):
    with pytest.raises(ValueError):
        DPAuditProbe({"reference_runs": runs})


# ---------------------------------------------------------------------------------------------- slow known answers
# One recipe for every model: memorises (many epochs, no dropout, final weights kept). DP runs use it with dp set.
RECIPE = {"epochs": 60, "batch_size": 16, "learning_rate": 5e-3, "weight_decay": 0.0, "warmup_fraction": 0.0,
          "patience": 100, "keep": "last", "classifier_dropout": 0.0, "hidden_dropout_prob": 0.0, "max_length": 16,
          "precision": "fp32"}
# δ well below 1/n: the one-run p-value carries a term 2·m·δ (Steinke et al. 2023), which at δ = 1e-3 and m = 200
# alone exceeds the test level, so no guesses could refute any ε.
N_TRAIN, N_CANARIES, DELTA = 100, 200, 1e-5
SEEDS = range(5)


def _noise_skipped():
    """The planted bug: DP-SGD adds noise of standard deviation 0 while the accountant, which reads the optimizer's
    noise multiplier after the step, still records the multiplier it chose — a false ε claim."""
    from opacus.optimizers import DPOptimizer

    add_noise = DPOptimizer.add_noise

    def add_no_noise(optimizer):
        chosen, optimizer.noise_multiplier = optimizer.noise_multiplier, 0.0
        try:
            add_noise(optimizer)
        finally:
            optimizer.noise_multiplier = chosen

    patch = pytest.MonkeyPatch()
    patch.setattr(DPOptimizer, "add_noise", add_no_noise)
    return patch


def _audit(pretrained_dir, out: Path, *, dp: dict | None, seed: int, skip_noise: bool = False) -> dict:
    from audit.subject import ModelUnderAudit
    from audit.train.config import finetune_config_from_dict
    from audit.train.finetune import finetune_classifier
    from probes.privacy.shadow import pinned_threads

    task = with_audit_canaries(noisy_rule_task(N_TRAIN, 40, noise=0.0, seed=seed),
                               AuditCanarySection(count=N_CANARIES, length=8, seed=seed))
    recipe = {**RECIPE, **({"dp": dp} if dp else {})}
    patch = _noise_skipped() if skip_noise else pytest.MonkeyPatch()
    try:
        with pinned_threads(1):
            outcome = finetune_classifier(pretrained_dir, task.split("train"), task.split("validation"),
                                          finetune_config_from_dict(recipe), seed=seed, num_labels=2)
    finally:
        patch.undo()
    outcome.model.save_pretrained(out)
    outcome.tokenizer.save_pretrained(out)
    (out / "finetune.json").write_text(json.dumps({"dp": outcome.extra.get("dp"), "recipe": recipe}))
    result = DPAuditProbe().run(ProbeContext(subject=ModelUnderAudit.from_pretrained(out), seed=0, task=task))
    return {metric.name: metric.value for metric in result.metrics} | {"finding": result.findings[0].level}


@pytest.fixture(scope="session")
def dp_audits(tiny_pretrained_dir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("dp-audits")
    audits = {"no_dp": _audit(tiny_pretrained_dir, root / "no-dp", dp=None, seed=0),
              "skipped_noise": _audit(tiny_pretrained_dir, root / "bug", dp={"epsilon": 1.0, "delta": DELTA},
                                      seed=0, skip_noise=True)}
    for epsilon in (1.0, 8.0):
        for seed in SEEDS:
            audits[epsilon, seed] = _audit(tiny_pretrained_dir, root / f"dp{epsilon:g}-{seed}",
                                           dp={"epsilon": epsilon, "delta": DELTA}, seed=seed)
    return audits


@pytest.mark.slow
def test_without_dp_the_canaries_give_a_positive_bound(dp_audits):
    assert dp_audits["no_dp"]["epsilon_lower_bound"] > 0.5, dp_audits["no_dp"]


@pytest.mark.slow
@pytest.mark.parametrize("epsilon", [1.0, 8.0])
def test_with_dp_the_bound_never_exceeds_the_accountant(dp_audits, epsilon):
    for seed in SEEDS:
        audit = dp_audits[epsilon, seed]
        assert audit["claimed_epsilon"] <= epsilon + 1e-6
        assert audit["epsilon_lower_bound"] <= audit["claimed_epsilon"], (seed, audit)
        assert audit["finding"] == "pass"


@pytest.mark.slow
def test_skipping_the_noise_is_caught_as_a_violated_claim(dp_audits):
    audit = dp_audits["skipped_noise"]
    assert audit["epsilon_lower_bound_minus_claimed"] > 0, audit
    assert audit["finding"] == "fail"
