"""Membership inference: can an attacker tell whether an example was in the fine-tuning training set?

Members are the fine-tuning examples of split "train"; non-members are the held-out examples ("validation",
"test") from the same distribution, as recorded at fine-tuning (``examples.jsonl``). Attacks (see ``attacks.py``):
loss threshold (Yeom et al., CSF 2018), LiRA online/offline (Carlini et al., S&P 2022) and RMIA (Zarifzadeh et al.,
ICML 2024), the last two with reference models fine-tuned by our own pipeline on random halves of the same pool
(``shadow.py``), on the local process or a Ray cluster (``executors.py``).

Direction: **lower attack success is better** (less leakage). Chance is AUC 0.5 and TPR = FPR (0.1% at 0.1% FPR).
Known limits: TPR at 0.1% FPR needs at least 1,000 non-members to be resolved (with fewer it is the zero-false-
alarm rate, a conservative estimate); with few reference models LiRA uses one variance for all examples; the
reference models are only as good a mirror of the target as the recorded fine-tuning recipe.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from pydantic import Field

from audit.data.task import LabelledExample
from audit.results import Example, Figure, Finding, Metric, ProbeResult, Table
from probes.base import (
    NO_GROUP,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeInputError,
    ProbeSkipped,
    declare,
    derive_seed,
    register,
)
from probes.privacy import attacks
from probes.privacy.executors import ExecutorError, make_executor
from probes.privacy.shadow import make_shadow_jobs, train_shadow_models
from probes.verdicts import chance_auc_verdict

AttackName = Literal["loss", "lira_online", "lira_offline", "rmia", "rmia_offline"]
REFERENCE_ATTACKS = {"lira_online", "lira_offline", "rmia", "rmia_offline"}
LIRA_ATTACKS = {"lira_online", "lira_offline"}
HELD_OUT_SPLITS = ("validation", "test")
LOW_FPRS = (0.01, 0.001)

ATTACK_LABELS = {
    "loss": "Loss threshold",
    "lira_online": "LiRA (online)",
    "lira_offline": "LiRA (offline)",
    "rmia": "RMIA",
    "rmia_offline": "RMIA (offline)",
}
ATTACK_ASSUMPTIONS = {
    "loss": "Sees the model's confidence in the true label; no reference models (Yeom et al. 2018).",
    "lira_online": "Sees the confidence and trains reference models with and without each example on data from "
    "the same distribution (Carlini et al. 2022).",
    "lira_offline": "Like online LiRA but only needs reference models that never saw the examples.",
    "rmia": "Compares each example with population samples through reference models, online (Zarifzadeh et al. "
    "2024).",
    "rmia_offline": "RMIA with OUT reference models only and the paper's linear approximation of the IN models.",
}


def _fpr_key(fpr: float) -> str:
    return {0.01: "tpr_at_1pct_fpr", 0.001: "tpr_at_0.1pct_fpr"}.get(fpr, f"tpr_at_fpr_{fpr:g}")


@register
class MembershipInferenceProbe(Probe):
    """Membership-inference attacks on the fine-tuned classifier, judged by TPR at low FPR.

    Method: Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022 (LiRA and the
    low-FPR evaluation); Yeom et al., CSF 2018 (loss attack); Zarifzadeh, Liu & Shokri, ICML 2024 (RMIA).
    Lower attack success = better privacy.
    """

    name = "membership"
    version = "1"
    family = "privacy"
    citation = (
        "Carlini et al., Membership Inference Attacks From First Principles, IEEE S&P 2022; Yeom et al., CSF 2018; "
        "Zarifzadeh, Liu & Shokri, Low-Cost High-Power Membership Inference Attacks, ICML 2024"
    )
    description = "Membership inference (loss, LiRA, RMIA) with reference models: TPR at 1% and 0.1% FPR"
    needs = frozenset({"classifier", "task", "pretrained"})
    how_to_read = (
        "Each attack tries to tell whether an example was used to train the model. Look at the true-positive rate "
        "at a low false-positive rate: 'TPR at 0.1% FPR = 5%' means an attacker who accepts one false alarm in "
        "1,000 correctly picks out 5% of the training examples. A model that leaks nothing scores about 0.1% there "
        "and an AUC of 0.5. Higher numbers mean more leakage; the ROC chart is on log axes so the low-FPR region, "
        "which matters for privacy, is visible."
    )

    # Per attack (group = the attack's name), then the strongest attack and the target model's accuracies.
    metrics = declare({
        **{name: frozenset(get_args(AttackName))
           for name in ("auc", "balanced_accuracy", *(_fpr_key(fpr) for fpr in LOW_FPRS))},
        **dict.fromkeys(("max_tpr_at_0.1pct_fpr", "max_auc", "train_accuracy", "heldout_accuracy"), NO_GROUP),
    })

    class Config(ProbeConfig):
        n_reference_models: int = Field(4, ge=0, description="reference models K; LiRA needs at least 2")
        attacks: list[AttackName] = Field(
            default_factory=lambda: ["loss", "lira_online", "lira_offline", "rmia", "rmia_offline"]
        )
        lira_variance: Literal["auto", "fixed", "per_example"] = "auto"  # auto: fixed below 64 models
        rmia_gamma: float = Field(2.0, gt=0.0)
        rmia_offline_a: float = Field(0.33, ge=0.0, le=1.0)
        rmia_population: int = Field(1000, ge=1)  # population samples z drawn from the pool
        max_population: int | None = Field(4000, ge=20)  # pool cap (stratified subsample) to bound CPU time
        executor: Literal["local", "ray"] = "local"
        address: str | None = None  # Ray cluster address; None starts a local instance
        threads_per_model: int = Field(1, ge=1)
        recipe_overrides: dict[str, object] = Field(default_factory=dict)  # e.g. {"epochs": 2} for quick runs
        n_bootstrap: int = Field(1000, ge=50)
        warn_tpr_at_low_fpr: float = Field(0.01, gt=0.0, le=1.0)  # 10x chance at 0.1% FPR
        fail_tpr_at_low_fpr: float = Field(0.05, gt=0.0, le=1.0)
        # "no leakage" is a pass only when the best attack's AUC interval stays at most 0.5 + this
        chance_auc_margin: float = Field(0.05, gt=0.0, lt=0.5)
        examples_shown: int = Field(3, ge=0)


    def declared_metrics(self):
        attacks = frozenset(self.config.attacks)
        return {name: attacks if groups is not NO_GROUP else groups for name, groups in self.metrics.items()}

    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        attack_names = list(dict.fromkeys(config.attacks))
        needs_reference = bool(REFERENCE_ATTACKS & set(attack_names))
        if LIRA_ATTACKS & set(attack_names) and config.n_reference_models < 2:
            raise ProbeInputError(
                f"LiRA needs at least 2 reference models, got n_reference_models = {config.n_reference_models}; "
                "set it to 2 or more (4-8 on a CPU) or drop lira_* from attacks"
            )
        if needs_reference and config.n_reference_models < 1:
            raise ProbeInputError("RMIA needs at least 1 reference model; set n_reference_models >= 1")

        warnings: list[str] = []
        pool, members = self._pool(ctx, warnings)
        labels = np.array([example.label for example in pool])
        texts = [example.text for example in pool]

        ctx.progress(f"membership: scoring {len(pool)} examples with the target")
        target_logits = ctx.subject.logits(texts)
        target_log_prob = attacks.true_class_log_prob(target_logits, labels)
        target_phi = attacks.logit_scaled_confidence(target_logits, labels)

        scores: dict[str, np.ndarray] = {}
        if "loss" in attack_names:
            scores["loss"] = attacks.loss_attack(target_log_prob)
        reference_rows: list[list] = []
        if needs_reference:
            shadow = self._train_reference(ctx, pool, warnings)
            reference_logits = shadow.logits  # (K, N, C)
            reference_phi = np.stack([attacks.logit_scaled_confidence(l, labels) for l in reference_logits])
            reference_prob = np.stack([np.exp(attacks.true_class_log_prob(l, labels)) for l in reference_logits])
            fixed = config.lira_variance == "fixed" or (
                config.lira_variance == "auto" and config.n_reference_models < 64
            )
            if "lira_online" in attack_names:
                scores["lira_online"] = attacks.lira_online(
                    target_phi, reference_phi, shadow.in_mask, fixed_variance=fixed
                )
            if "lira_offline" in attack_names:
                scores["lira_offline"] = attacks.lira_offline(
                    target_phi, reference_phi, shadow.in_mask, fixed_variance=fixed
                )
            population = np.sort(
                np.random.default_rng(derive_seed(ctx.seed, "rmia-z")).permutation(len(pool))[
                    : config.rmia_population
                ]
            )
            target_prob = np.exp(target_log_prob)
            if "rmia" in attack_names:
                scores["rmia"] = attacks.rmia(
                    target_prob, reference_prob, shadow.in_mask, population_index=population, gamma=config.rmia_gamma
                )
            if "rmia_offline" in attack_names:
                scores["rmia_offline"] = attacks.rmia(
                    target_prob,
                    reference_prob,
                    shadow.in_mask,
                    population_index=population,
                    gamma=config.rmia_gamma,
                    offline_a=config.rmia_offline_a,
                )
            if config.n_reference_models < 64 and LIRA_ATTACKS & set(attack_names):
                variance = "one variance shared by all examples" if fixed else "per-example variances"
                warnings.append(
                    f"LiRA ran with {config.n_reference_models} reference models ({variance}); Carlini et al. use "
                    "64+ for their strongest results, so these figures are a lower bound on the leakage"
                )
            reference_rows = self._reference_table_rows(shadow, labels, members)
            if config.n_reference_models in (2, 3) and fixed:
                warnings.append(
                    "with 2-3 reference models each example has one IN statistic, so LiRA's variance is estimated "
                    "across IN and OUT together (conservative)"
                )

        n_out = int((~members).sum())
        if n_out < 1000:
            warnings.append(
                f"only {n_out} non-members: TPR at 0.1% FPR is measured at zero false alarms (resolution "
                f"1/{n_out}), a conservative estimate"
            )
        rng = np.random.default_rng(derive_seed(ctx.seed, "bootstrap"))
        evaluations = {
            name: attacks.evaluate_attack(
                scores[name], members, rng=rng, fprs=LOW_FPRS, n_resamples=config.n_bootstrap
            )
            for name in attack_names
        }
        target_accuracy = self._accuracy_rows(target_logits, labels, members)
        return self._result(
            ctx, pool, members, scores, evaluations, warnings, reference_rows, target_accuracy
        )

    # ---------------------------------------------------------------------------------------------- data
    def _pool(self, ctx: ProbeContext, warnings: list[str]) -> tuple[list[LabelledExample], np.ndarray]:
        task = ctx.task
        train = task.split("train")
        held_out = [example for example in task.examples if example.split in HELD_OUT_SPLITS]
        if not train or not held_out:
            found = sorted({example.split for example in task.examples})
            raise ProbeSkipped(
                f"task {task.name!r} lacks split membership (splits found: {found or 'none'}); membership inference "
                "needs examples marked 'train' and held-out ones marked 'validation'/'test' (a task file's split "
                "column, or examples.jsonl as `rai-audit finetune` writes it)"
            )
        pool = train + held_out
        members = np.array([True] * len(train) + [False] * len(held_out))
        cap = self.config.max_population
        if cap is not None and len(pool) > cap:
            rng = np.random.default_rng(derive_seed(ctx.seed, "pool"))
            keep_in = round(cap * len(train) / len(pool))
            chosen_in = np.sort(rng.permutation(len(train))[:keep_in])
            chosen_out = len(train) + np.sort(rng.permutation(len(held_out))[: cap - keep_in])
            chosen = np.concatenate([chosen_in, chosen_out])
            warnings.append(
                f"the pool was subsampled to {cap} of {len(pool)} examples (max_population) to bound training time"
            )
            pool = [pool[i] for i in chosen]
            members = members[chosen]
        return pool, members

    def _train_reference(self, ctx: ProbeContext, pool, warnings):
        config = self.config
        recipe = dict(ctx.finetune_recipe or {})
        if isinstance(recipe.get("recipe"), dict):  # given the whole finetune.json record: take its recipe
            recipe = dict(recipe["recipe"])
        if not recipe:
            warnings.append("no fine-tuning recipe was recorded; reference models use the default recipe")
        recipe.update(config.recipe_overrides)
        n_validation = max(1, len(ctx.task.split("validation")) or len(pool) // 10)
        in_mask, jobs = make_shadow_jobs(
            pool,
            n_models=config.n_reference_models,
            pretrained_dir=str(ctx.pretrained_dir),
            recipe=recipe,
            seed=ctx.seed,
            max_length=int(ctx.subject.max_length),
            n_validation=min(n_validation, len(pool) // 4 or 1),
            num_labels=int(ctx.subject.num_labels or len(ctx.task.label_names)),
            threads=config.threads_per_model,
        )
        try:
            executor = make_executor(config.executor, address=config.address)
        except ExecutorError as error:
            raise ProbeInputError(str(error)) from None
        with ctx.progress.task(f"reference models ({executor.name} executor)", total=config.n_reference_models,
                               unit="models") as shown:
            return train_shadow_models(jobs, in_mask, executor, on_done=shown.advance)

    @staticmethod
    def _accuracy_rows(logits, labels, members) -> tuple[float, float]:
        correct = np.argmax(logits, axis=-1) == labels
        return float(correct[members].mean()), float(correct[~members].mean())

    def _reference_table_rows(self, shadow, labels, members) -> list[list]:
        rows = []
        for outcome, mask in zip(shadow.outcomes, shadow.in_mask):
            correct = np.argmax(outcome.logits, axis=-1) == labels
            rows.append(
                [
                    outcome.index,
                    outcome.n_train,
                    outcome.best_epoch,
                    round(float(correct[mask].mean()), 4),
                    round(float(correct[~mask].mean()), 4),
                ]
            )
        return rows

    # ---------------------------------------------------------------------------------------------- result
    def _result(self, ctx, pool, members, scores, evaluations, warnings, reference_rows, target_accuracy):
        metrics: list[Metric] = []
        n = len(pool)
        for name, evaluation in evaluations.items():
            metrics.append(self._metric("auc", name, evaluation.auc, n, "ROC AUC (0.5 = chance)"))
            metrics.append(
                self._metric("balanced_accuracy", name, evaluation.balanced_accuracy, n, "best-threshold accuracy")
            )
            for fpr, estimate in evaluation.tpr_at_fpr.items():
                metrics.append(self._metric(_fpr_key(fpr), name, estimate, n, f"TPR at {fpr:.1%} FPR"))
        best_low = max(evaluations, key=lambda name: evaluations[name].tpr_at_fpr[0.001].value)
        best_auc = max(evaluations, key=lambda name: evaluations[name].auc.value)
        for key, best, estimate in (
            ("max_tpr_at_0.1pct_fpr", best_low, evaluations[best_low].tpr_at_fpr[0.001]),
            ("max_auc", best_auc, evaluations[best_auc].auc),
        ):
            metrics.append(self._metric(key, None, estimate, n, f"strongest attack ({ATTACK_LABELS[best]})"))
        metrics.append(Metric(name="train_accuracy", value=target_accuracy[0], n=int(members.sum())))
        metrics.append(Metric(name="heldout_accuracy", value=target_accuracy[1], n=int((~members).sum())))

        tables = [
            Table(
                name="attacks",
                title="Attack success",
                columns=["attack", "assumes", "AUC [95% CI]", "balanced accuracy", "TPR @ 1% FPR", "TPR @ 0.1% FPR"],
                rows=[
                    [
                        ATTACK_LABELS[name],
                        ATTACK_ASSUMPTIONS[name],
                        _with_ci(evaluation.auc, 3),
                        _with_ci(evaluation.balanced_accuracy, 3),
                        _with_ci(evaluation.tpr_at_fpr[0.01], 3, percent=True),
                        _with_ci(evaluation.tpr_at_fpr[0.001], 3, percent=True),
                    ]
                    for name, evaluation in evaluations.items()
                ],
                caption=f"{int(members.sum())} members (training examples) vs {int((~members).sum())} held-out "
                "non-members; 95% stratified bootstrap intervals.",
            )
        ]
        if reference_rows:
            tables.append(
                Table(
                    name="reference_models",
                    title="Reference models",
                    columns=["model", "training examples", "best epoch", "accuracy IN", "accuracy OUT"],
                    rows=reference_rows,
                    caption=f"Target: accuracy {target_accuracy[0]:.3f} on members, {target_accuracy[1]:.3f} on "
                    "non-members. Reference models should show a similar IN/OUT gap.",
                )
            )

        series = []
        for name in evaluations:
            member_scores, nonmember_scores = scores[name][members], scores[name][~members]
            fpr, tpr = attacks.roc_on_log_grid(member_scores, nonmember_scores)
            series.append({"label": ATTACK_LABELS[name], "x": _rounded(fpr), "y": _rounded(tpr)})
        chance_x = series[0]["x"] if series else []
        series.append({"label": "chance", "x": chance_x, "y": chance_x})
        figures = [
            Figure(
                name="roc",
                title="Membership-inference ROC (log-log)",
                kind="roc",
                data={"series": series},
                x_label="false-positive rate",
                y_label="true-positive rate",
                log_scale=True,
                caption="Curves far above the diagonal at the left edge mean confident identification of members.",
            )
        ]

        per_example: dict[str, list] = {
            "example_ids": [example.id for example in pool],
            "member": [bool(value) for value in members],
        }
        for name in evaluations:
            per_example[f"score_{name}"] = _rounded(scores[name])

        findings = self._findings(evaluations, best_low, best_auc, int((~members).sum()))
        examples = self._examples(pool, members, scores, best_low)
        return self.new_result(
            metrics=metrics,
            tables=tables,
            figures=figures,
            examples=examples,
            findings=findings,
            warnings=warnings,
            per_example=per_example,
        )

    @staticmethod
    def _metric(key, group, estimate, n, description) -> Metric:
        return Metric(
            name=key,
            group=group,
            value=estimate.value,
            ci_low=estimate.ci_low,
            ci_high=estimate.ci_high,
            higher_is_better=False,
            n=n,
            description=description,
        )

    def _findings(self, evaluations, best_low, best_auc, n_out) -> list[Finding]:
        config = self.config
        low = evaluations[best_low].tpr_at_fpr[0.001]
        level = "pass"
        if low.value >= config.fail_tpr_at_low_fpr:
            level = "fail"
        elif low.value >= config.warn_tpr_at_low_fpr:
            level = "warn"
        caveat = f" (measured at zero false alarms: only {n_out} non-members)" if n_out < 1000 else ""
        findings = [
            Finding(
                level=level,
                metric="max_tpr_at_0.1pct_fpr",
                message=(
                    f"An attacker that accepts 1 false alarm in 1,000 identifies {low.value:.1%} of training "
                    f"examples (95% CI {low.ci_low:.1%}–{low.ci_high:.1%}; strongest attack: "
                    f"{ATTACK_LABELS[best_low]}; chance is 0.1%){caveat}."
                ),
            )
        ]
        auc = evaluations[best_auc].auc
        verdict = chance_auc_verdict(auc, margin=config.chance_auc_margin, separated="members from non-members")
        if verdict is not None:
            auc_level, message = verdict
        else:
            message = (
                f"The strongest attack ({ATTACK_LABELS[best_auc]}) tells members from non-members with AUC "
                f"{auc.value:.3f} (95% CI {auc.ci_low:.3f}–{auc.ci_high:.3f}; 0.5 is chance)."
            )
            auc_level = "warn" if auc.value >= 0.6 else "info"
        findings.append(Finding(level=auc_level, metric="max_auc", message=message))
        return findings

    def _examples(self, pool, members, scores, attack) -> list[Example]:
        order = np.argsort(-scores[attack], kind="stable")
        shown = [i for i in order if members[i]][: self.config.examples_shown]
        return [
            Example(
                title=f"Training example most exposed to {ATTACK_LABELS[attack]}",
                fields={
                    "id": pool[i].id,
                    "text": pool[i].text[:200],
                    "label": pool[i].label,
                    "attack score": round(float(scores[attack][i]), 4),
                },
            )
            for i in shown
        ]


def _with_ci(estimate, digits: int, *, percent: bool = False) -> str:
    if percent:
        return f"{estimate.value:.1%} [{estimate.ci_low:.1%}, {estimate.ci_high:.1%}]"
    return f"{estimate.value:.{digits}f} [{estimate.ci_low:.{digits}f}, {estimate.ci_high:.{digits}f}]"


def _rounded(values) -> list[float]:
    # Six significant digits keep results.json small and are far finer than any attack's resolution.
    return [float(f"{float(value):.6g}") for value in values]
