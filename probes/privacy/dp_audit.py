"""Does a differential-privacy claim hold? An empirical lower bound on ε from canaries, set against the claim.

Method: Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023. Fine-tuning with
``data.audit_canaries`` adds m crafted texts with random labels, each trained on with probability 1/2 (the coin
flips are the task's split membership, see ``audit.train.audit_canaries``). After training, the model's
log-probability of a canary's label is its score. For a guess count k the auditor guesses on k canaries and
abstains on the rest, in one of three ways: "included" for the k/2 highest scores and "excluded" for the k/2
lowest (``both``), "excluded" for the k lowest (``out``), or "included" for the k highest (``in``). The number of
right guesses gives an ε that the run cannot have had at 95% confidence
(``dp_bounds.one_run_epsilon_lower_bound``; the bound holds for any guesses that depend on the trained model alone,
Steinke et al. §3); every guess count and side is tried with a Bonferroni correction, so the reported maximum keeps
its confidence.

Why one-sided guesses: a canary's random label agrees with what the model would predict from the task's own
features about half the time. Such canaries score high whether or not they were trained on, so the top of the
ranking mixes included canaries with excluded ones; the bottom does not — a canary whose label the model finds
unlikely was, with high confidence, not trained on. Guessing "excluded" alone there makes every guess count.

Many runs (optional, ``reference_runs``; Jagielski, Ullman & Oprea, NeurIPS 2020): the recipe is fine-tuned again
R times, on the same training set with the first canary added in every other run and left out in the others. The
attack, fixed before any run, guesses "included" when the run's model predicts that canary's label; its
true- and false-positive counts over the independent runs give a Clopper–Pearson bound on ε
(``dp_bounds.tpr_fpr_epsilon_lower_bound``). With both methods each is held at half the error rate, and the larger
bound is reported. R runs cost R fine-tunings and can show little: at most ε ≈ 0.60 with 20 runs.

Direction: **a lower bound is better** — and it must never exceed the claimed ε (the accountant's ε recorded in
finetune.json): a bound above the claim means the training (or its accounting) is not as private as claimed.
A bound below the claim does not prove the claim (an audit only ever shows leakage, never its absence), and one
run with m canaries cannot reach large ε: with all guesses right, the bound grows only like log(m).
Without DP the bound shows how much the canaries leak.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from audit.results import Figure, Finding, Metric, ProbeResult, Table
from probes.base import NO_GROUP, Probe, ProbeConfig, ProbeContext, ProbeSkipped, declare, register
from probes.privacy import attacks
from probes.privacy.dp_bounds import one_run_epsilon_lower_bound, tpr_fpr_epsilon_lower_bound

DEFAULT_DELTA = 1e-5
_SIDE_NAMES = {"both": "half in, half out", "out": "all out", "in": "all in"}


@register
class DPAuditProbe(Probe):
    """Empirical ε lower bound from canaries in one training run (Steinke, Nasr & Jagielski, NeurIPS 2023), set
    against the claimed ε. Lower is better; above the claim is a violated privacy claim."""

    name = "dp_audit"
    version = "1"
    family = "privacy"
    citation = (
        "Steinke, Nasr & Jagielski, Privacy Auditing with One (1) Training Run, NeurIPS 2023; Jagielski, Ullman & "
        "Oprea, Auditing Differentially Private Machine Learning, NeurIPS 2020"
    )
    description = "Empirical ε lower bound from canaries (one-run audit) against the claimed DP ε"
    needs = frozenset({"classifier", "task"})
    how_to_read = (
        "Canaries — made-up texts with random labels — were each trained on with probability 1/2. An attacker "
        "guesses which ones were, from how confidently the model predicts their labels. Many right guesses prove "
        "that the model leaks: 'ε ≥ 2.1 at 95% confidence' means no training with ε below 2.1 could plausibly "
        "have let the attacker do that well. If the model claims differential privacy, the lower bound must stay "
        "below the claimed ε; above it, the claim is false. A bound below the claim is consistent with it but "
        "does not prove it."
    )
    metrics = declare(dict.fromkeys((
        "epsilon_lower_bound", "claimed_epsilon", "epsilon_lower_bound_minus_claimed", "canary_auc",
        "guess_accuracy", "test_macro_f1", "test_macro_f1_without_dp", "utility_cost_macro_f1",
        "epsilon_lower_bound_reference_runs",
    ), NO_GROUP))

    class Config(ProbeConfig):
        guess_fractions: list[float] = Field(
            default_factory=lambda: [0.1, 0.2, 0.5, 1.0],
            description="guesses k as fractions of the m canaries; Bonferroni over them and the sides",
        )
        guess_sides: list[Literal["both", "out", "in"]] = Field(
            default_factory=lambda: ["both", "out"], min_length=1,
            description="both: k/2 highest scores 'in' and k/2 lowest 'out'; out: k lowest 'out'; in: k highest 'in'",
        )
        confidence: float = Field(0.95, gt=0.5, lt=1.0)
        delta: float | None = Field(None, ge=0.0, lt=1.0, description="default: the DP record's δ, else 1e-5")
        claimed_epsilon: float | None = Field(None, gt=0.0, description="default: the accountant's ε")
        compare_without_dp: bool = Field(
            False, description="fine-tune the same recipe without DP to measure the utility cost (one more model)")
        reference_runs: int = Field(
            0, ge=0, description="fine-tune the recipe this many more times (even: half with the first canary, half "
            "without) for the Clopper–Pearson bound over independent runs; 0 = off")

        @field_validator("reference_runs")
        @classmethod
        def _even(cls, runs: int) -> int:
            if runs % 2 or runs == 2:
                raise ValueError(f"expected 0 or an even number of at least 4 runs (half with the canary), got {runs}")
            return runs

        @field_validator("guess_fractions")
        @classmethod
        def _fractions_of_the_canaries(cls, fractions: list[float]) -> list[float]:
            if not fractions or not all(0.0 < fraction <= 1.0 for fraction in fractions):
                raise ValueError(f"expected one or more fractions in (0, 1], got {fractions}")
            return fractions

    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        from audit.train.audit_canaries import is_canary

        canaries = [e for e in ctx.task.examples if is_canary(e)]
        included = np.array([e.split == "train" for e in canaries], dtype=bool)
        if len(canaries) < 2 or included.all() or not included.any():
            raise ProbeSkipped(
                "no audit canaries with both outcomes in the task; fine-tune with data.audit_canaries "
                "(e.g. { count = 200 }) to audit a privacy claim"
            )
        record = _dp_record(ctx)
        claimed = config.claimed_epsilon if config.claimed_epsilon is not None else _finite(record, "epsilon")
        # an accountant that spent an unbounded ε claims nothing; a record without a usable δ gets the default
        delta = config.delta if config.delta is not None else _finite(record, "delta")
        if delta is None or not 0.0 <= delta < 1.0:
            delta = DEFAULT_DELTA

        warnings: list[str] = []
        runs = self._reference_runs(ctx, canaries[0], warnings) if config.reference_runs else None
        # two methods, one verdict: each at half the error rate, so the larger bound keeps the stated confidence
        confidence = 1 - (1 - config.confidence) / (2 if runs is not None else 1)
        logits = ctx.subject.logits([e.text for e in canaries])
        scores = attacks.true_class_log_prob(logits, np.array([e.label for e in canaries]))
        guesses = self._guesses(scores, included, delta, confidence)
        best = max(guesses, key=lambda row: row["bound"])
        if runs is not None:
            runs["bound"] = tpr_fpr_epsilon_lower_bound(**runs["counts"], delta=delta, confidence=confidence)
            if runs["bound"] > best["bound"]:
                best = {**best, "bound": runs["bound"], "reference_runs": runs}
        auc = float(attacks.roc_auc(scores[included], scores[~included]))

        metrics = [
            Metric(name="epsilon_lower_bound", value=best["bound"], higher_is_better=False, n=len(canaries),
                   description=f"ε lower bound at {config.confidence:.0%} confidence (δ = {delta:g})"),
            Metric(name="canary_auc", value=auc, higher_is_better=False, n=len(canaries),
                   description="ROC AUC of canary scores, included vs excluded (0.5 = chance)"),
            Metric(name="guess_accuracy", value=best["right"] / best["guesses"], higher_is_better=False,
                   n=best["guesses"], description="right guesses of the best guess count"),
        ]
        if claimed is not None:
            metrics += [
                Metric(name="claimed_epsilon", value=float(claimed), higher_is_better=False),
                Metric(name="epsilon_lower_bound_minus_claimed", value=best["bound"] - float(claimed),
                       higher_is_better=False, description="above 0: the DP claim is violated"),
            ]
        tables = [self._table(guesses, len(canaries), int(included.sum()), delta)]
        if runs is not None:
            counts = runs["counts"]
            metrics.append(Metric(
                name="epsilon_lower_bound_reference_runs", value=runs["bound"], higher_is_better=False,
                n=counts["positives"] + counts["negatives"],
                description=f"Clopper–Pearson ε lower bound over independent runs at {confidence:.1%} confidence"))
            tables.append(Table(
                name="reference_runs", title="Independent runs: the first canary in half of them",
                columns=["runs with the canary", "its label predicted", "runs without it", "its label predicted",
                         "ε lower bound"],
                rows=[[counts["positives"], counts["true_positives"], counts["negatives"], counts["false_positives"],
                       round(runs["bound"], 4)]],
                caption=f"Guess 'included' when the run's model predicts the canary's label; δ = {delta:g}.",
            ))
        metrics += self._utility(ctx, record, warnings)
        return self.new_result(
            metrics=metrics,
            tables=tables,
            figures=[_roc_figure(scores, included)],
            findings=[self._finding(best, claimed, delta, len(canaries))],
            warnings=warnings,
            per_example={"example_ids": [e.id for e in canaries], "member": [bool(v) for v in included],
                         "score": [float(f"{v:.6g}") for v in scores]},
        )

    def _guesses(self, scores, included, delta, confidence) -> list[dict]:
        """For each guess count k and side: which canaries are guessed in and out (by score rank), how many guesses
        are right, and the ε bound at ``confidence`` Bonferroni-corrected over every count and side."""
        m = len(scores)
        order = np.argsort(-scores, kind="stable")
        counts = sorted({min(m, max(2, 2 * round(fraction * m / 2))) for fraction in self.config.guess_fractions})
        sides = list(dict.fromkeys(self.config.guess_sides))
        confidence = 1 - (1 - confidence) / (len(counts) * len(sides))
        rows = []
        for side in sides:
            for k in counts:
                n_in = {"both": k // 2, "out": 0, "in": k}[side]
                n_out = k - n_in
                right = int(included[order[:n_in]].sum() + (~included[order[m - n_out:]]).sum())
                rows.append({"side": side, "guesses": n_in + n_out, "right": right, "bound": one_run_epsilon_lower_bound(
                    m=m, r=n_in + n_out, v=right, delta=delta, confidence=confidence)})
        return rows

    def _reference_runs(self, ctx: ProbeContext, canary, warnings: list[str]) -> dict | None:
        """Fine-tune the recipe ``reference_runs`` times, with ``canary`` in the even runs only (each run its own
        seed), and count the runs whose model predicts the canary's label."""
        if ctx.pretrained_dir is None or not ctx.finetune_recipe:
            warnings.append("reference_runs needs the recipe and the pretrained model, which are unknown; only the "
                            "one-run bound is computed")
            return None
        without = [e for e in ctx.task.split("train") if e.id != canary.id]
        with_canary = [*without, replace(canary, split="train")]
        counts = {"true_positives": 0, "positives": 0, "false_positives": 0, "negatives": 0}
        with ctx.progress.task("dp_audit: reference runs", total=self.config.reference_runs, unit="model") as shown:
            for run in range(self.config.reference_runs):
                included = run % 2 == 0
                logits = _fine_tuned_logits(ctx, ctx.finetune_recipe, with_canary if included else without,
                                            [canary.text], seed_offset=1 + run)
                predicted = int(np.argmax(logits[0]) == canary.label)
                counts["true_positives" if included else "false_positives"] += predicted
                counts["positives" if included else "negatives"] += 1
                shown.advance()
        return {"counts": counts}

    def _utility(self, ctx: ProbeContext, record, warnings: list[str]) -> list[Metric]:
        """Macro-F1 on the test split, and — when asked — of the same recipe fine-tuned without DP."""
        test = ctx.task.split("test")
        if not test:
            return []
        labels = np.array([e.label for e in test])
        with_dp = _macro_f1(labels, ctx.subject.logits([e.text for e in test]), ctx.task.label_names)
        metrics = [Metric(name="test_macro_f1", value=with_dp, higher_is_better=True, n=len(test))]
        if not (self.config.compare_without_dp and record):
            return metrics
        if ctx.pretrained_dir is None or not ctx.finetune_recipe:
            warnings.append("the recipe or pretrained model is unknown, so the utility cost of DP is not measured")
            return metrics
        without = _macro_f1(labels, _logits_without_dp(ctx, [e.text for e in test]), ctx.task.label_names)
        metrics += [
            Metric(name="test_macro_f1_without_dp", value=without, higher_is_better=True, n=len(test)),
            Metric(name="utility_cost_macro_f1", value=without - with_dp, higher_is_better=False, n=len(test),
                   description="macro-F1 lost to DP (same recipe, same seed, without dp)"),
        ]
        return metrics

    def _finding(self, best, claimed, delta, m) -> Finding:
        bound = best["bound"]
        if "reference_runs" in best:
            counts = best["reference_runs"]["counts"]
            observed = (f"the first canary's label was predicted by {counts['true_positives']} of "
                        f"{counts['positives']} runs that trained on it and {counts['false_positives']} of "
                        f"{counts['negatives']} that did not")
        else:
            observed = (f"{best['right']} of {best['guesses']} guesses ({_SIDE_NAMES[best['side']]}) about {m} "
                        "canaries were right")
        evidence = f"{observed}: ε ≥ {bound:.2f} at {self.config.confidence:.0%} confidence (δ = {delta:g})"
        if claimed is None:
            return Finding(level="info", metric="epsilon_lower_bound",
                           message=f"No differential-privacy claim recorded; {evidence}.")
        if bound > claimed:
            return Finding(level="fail", metric="epsilon_lower_bound_minus_claimed",
                           message=f"The privacy claim ε = {claimed:.2f} is violated: {evidence}.")
        return Finding(level="pass", metric="epsilon_lower_bound_minus_claimed",
                       message=f"Consistent with the claimed ε = {claimed:.2f}: {evidence} (an audit can refute a "
                       "claim, never prove it).")

    @staticmethod
    def _table(guesses, m, n_included, delta) -> Table:
        return Table(
            name="guesses", title="One-run audit: guesses and ε lower bounds",
            columns=["guessed", "guesses k", "right", "accuracy", "ε lower bound"],
            rows=[[_SIDE_NAMES[row["side"]], row["guesses"], row["right"], round(row["right"] / row["guesses"], 4),
                   round(row["bound"], 4)] for row in guesses],
            caption=f"{m} canaries, {n_included} included by coin flip; δ = {delta:g}; each bound at the "
            "Bonferroni-corrected confidence so the largest keeps the stated one.",
        )


def _dp_record(ctx: ProbeContext) -> dict | None:
    """finetune.json's ``dp`` record beside the audited classifier (None: not trained with DP)."""
    from audit.model_folder import read_json_record

    path = Path(getattr(ctx.subject, "path", "") or "") / "finetune.json"
    if not path.is_file():
        return None
    record = read_json_record(path, "fine-tuning record").get("dp")
    return record if isinstance(record, dict) else None


def _finite(record: dict | None, key: str) -> float | None:
    """``record[key]`` when it is a finite number, else None (no record, no key, or a value that is none)."""
    value = (record or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _macro_f1(labels: np.ndarray, logits: np.ndarray, label_names: list[str]) -> float:
    """Macro-F1 over every class of the task, as finetune.json reports it."""
    from audit.train.finetune import classification_metrics

    return float(classification_metrics(labels, np.argmax(logits, axis=-1), label_names)["macro_f1"])


def _logits_without_dp(ctx: ProbeContext, texts: list[str]) -> np.ndarray:
    recipe = {key: value for key, value in ctx.finetune_recipe.items() if key != "dp"}
    with ctx.progress.task("dp_audit: the same recipe without DP", unit="model"):
        return _fine_tuned_logits(ctx, recipe, ctx.task.split("train"), texts)


def _fine_tuned_logits(ctx: ProbeContext, recipe: dict, train: list, texts: list[str], *,
                       seed_offset: int = 0) -> np.ndarray:
    """Fine-tune ``recipe`` from the subject's pretrained model on ``train`` (seed: the recipe's plus
    ``seed_offset``) and return its logits for ``texts``."""
    from audit.train.config import finetune_config_from_dict
    from audit.train.finetune import finetune_classifier
    from probes.privacy.shadow import classifier_logits

    config = finetune_config_from_dict(recipe, source="dp_audit: the subject's recipe")
    outcome = finetune_classifier(ctx.pretrained_dir, train, ctx.task.split("validation"), config,
                                  seed=config.seed + seed_offset, num_labels=len(ctx.task.label_names))
    return classifier_logits(outcome.model, outcome.tokenizer, texts, max_length=outcome.max_length)


def _roc_figure(scores, included) -> Figure:
    fpr, tpr = attacks.roc_on_log_grid(scores[included], scores[~included])
    rounded = [[float(f"{value:.6g}") for value in values] for values in (fpr, tpr)]
    return Figure(
        name="roc", title="Canary membership ROC (log-log)", kind="roc",
        data={"series": [{"label": "canary score", "x": rounded[0], "y": rounded[1]},
                         {"label": "chance", "x": rounded[0], "y": rounded[0]}]},
        x_label="false-positive rate", y_label="true-positive rate", log_scale=True,
        caption="Included vs excluded canaries scored by the log-probability of their label.",
    )
