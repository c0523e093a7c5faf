"""Membership inference on a causal language model's pretraining documents: can an attacker tell which documents
the model was trained on?

Members are pretraining documents, non-members held-out documents of the same corpus (see
``pretraining_documents``). Each document is scored by the target causal LM and four attacks turn the scores into
"how likely a member" (higher = member):

  - **loss** (Yeom et al., CSF 2018): minus the mean next-token loss; members are fitted better.
  - **zlib** (Carlini et al., "Extracting Training Data from Large Language Models", USENIX Security 2021): minus
    the ratio of the log-perplexity to the zlib-compressed length of the text, which discounts documents that are
    likely to any model because they are repetitive.
  - **min_k** (Shi et al., "Detecting Pretraining Data from Large Language Models", ICLR 2024, Min-K% Prob): the
    mean log-probability of the k% least likely tokens; an unseen text has a few very unlikely tokens, a member
    fewer.
  - **reference** (Carlini et al. 2021's comparison with a smaller model; Mireshghallah et al. 2022): reference
    loss minus target loss, with a second causal LM that did not see the documents; skipped without one.

Evaluation as in Carlini et al., "Membership Inference Attacks From First Principles" (S&P 2022): ROC AUC and the
true-positive rate at 1% and 0.1% false positives, with stratified bootstrap intervals (``attacks.evaluate_attack``).

Documents longer than the model's context window are scored in consecutive windows cut at word boundaries, each
window conditioned only on the prefix token (BOS, else EOS), as pretraining packs documents into chunks.

Direction: **lower attack success is better** (less leakage); chance is AUC 0.5 and TPR = FPR. Limits: held-out
documents are a fair comparison only when they come from the same distribution as the members (true for a seeded
split of one corpus, not necessarily for a user's JSONL); TPR at 0.1% FPR needs 1,000 non-members to be resolved.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from audit.results import Example, Figure, Finding, Metric, ProbeResult, Table
from probes.base import (
    NO_GROUP,
    BootstrapResamples,
    Count,
    Probe,
    ProbeConfig,
    ProbeContext,
    ProbeInputError,
    ShownCount,
    declare,
    derive_seed,
    register,
)
from probes.privacy import attacks
from probes.privacy.pretraining_documents import balanced_sample, load_membership_documents
from probes.verdicts import chance_auc_verdict

ATTACKS = ("loss", "zlib", "min_k", "reference")
ATTACK_LABELS = {"loss": "Loss", "zlib": "zlib ratio", "min_k": "Min-K% Prob", "reference": "Reference model"}
LOW_FPRS = {0.01: "tpr_at_1pct_fpr", 0.001: "tpr_at_0.1pct_fpr"}


def document_windows(tokenizer, texts: Sequence[str], window: int) -> list[list[str]]:
    """Each text as consecutive pieces of at most ``window`` tokens, cut where a gap (whitespace) precedes a token
    so that each piece tokenizes as it does inside the text; a run of ``window`` tokens without a gap is cut
    anyway."""
    if window < 2:
        raise ProbeInputError(f"the model's context window ({window} tokens) is too short to score documents")
    offsets_per_text = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    pieces_per_text = []
    for text, offsets in zip(texts, offsets_per_text):
        pieces, start = [], 0
        while start < len(offsets):
            end = min(len(offsets), start + window)
            if end < len(offsets):
                cut = end
                while cut > start + 1 and offsets[cut][0] <= offsets[cut - 1][1]:
                    cut -= 1
                end = cut if cut > start + 1 else end
            pieces.append(text[offsets[start][0]:offsets[end - 1][1]])
            start = end
        pieces_per_text.append(pieces)
    return pieces_per_text


def document_token_logprobs(subject, texts: Sequence[str], *, batch_size: int) -> list[np.ndarray]:
    """Per document: the log-probability of each token, scored window by window (see ``document_windows``)."""
    # One token of the window goes to the prefix token; one more is spare in case a piece re-tokenizes longer.
    pieces = document_windows(subject.tokenizer, texts, subject.max_length - 1)
    flat = [piece for document in pieces for piece in document]
    scores = subject.token_logprobs(flat, batch_size=batch_size)
    result, position = [], 0
    for document in pieces:
        parts = scores[position:position + len(document)]
        position += len(document)
        result.append(np.concatenate(parts) if parts else np.zeros(0))
    return result


def mean_loss(token_logprobs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean next-token cross-entropy (nats) per document, (N,)."""
    return np.array([-float(values.mean()) for values in token_logprobs])


def zlib_bytes(texts: Sequence[str]) -> np.ndarray:
    """Length in bytes of each text's UTF-8 encoding compressed by zlib (Carlini et al. 2021's zlib entropy)."""
    return np.array([len(zlib.compress(text.encode("utf-8"))) for text in texts], dtype=np.float64)


def zlib_ratio_score(losses: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """Minus log-perplexity / zlib entropy (Carlini et al. 2021); higher = more likely a member."""
    return -np.asarray(losses, dtype=np.float64) / zlib_bytes(texts)


def min_k_percent_score(token_logprobs: Sequence[np.ndarray], k_percent: float) -> np.ndarray:
    """Min-K% Prob (Shi et al., ICLR 2024): mean log-probability of the k% least likely tokens (at least one)."""
    scores = []
    for values in token_logprobs:
        count = max(1, int(len(values) * k_percent / 100.0))
        scores.append(float(np.sort(values)[:count].mean()))
    return np.array(scores)


@register
class LanguageModelMembershipProbe(Probe):
    """Membership inference on a causal LM's pretraining documents (loss, zlib, Min-K% Prob, reference model),
    judged by AUC and TPR at low FPR. Lower attack success is better."""

    name = "lm_membership"
    version = "1"
    family = "privacy"
    citation = (
        "Yeom et al., CSF 2018; Carlini et al., Extracting Training Data from Large Language Models, USENIX "
        "Security 2021; Shi et al., Detecting Pretraining Data from Large Language Models, ICLR 2024; Carlini et "
        "al., Membership Inference Attacks From First Principles, IEEE S&P 2022"
    )
    description = "Membership inference on pretraining documents of a causal LM: AUC and TPR at 1% and 0.1% FPR"
    needs = frozenset({"causal-lm"})
    how_to_read = (
        "Each attack tries to tell whether a document was in the model's pretraining text, from how likely the "
        "model finds it. AUC 0.5 is chance; 'TPR at 1% FPR = 20%' means an attacker who accepts one false alarm in "
        "100 picks out 20% of the training documents. Higher numbers mean the model leaks which documents it was "
        "trained on, usually because it was trained many times over a small corpus."
    )

    # Per attack (group = the attack's name), then the strongest attack and the mean loss of each side.
    metrics = declare({
        **{name: frozenset(ATTACKS) for name in ("auc", *LOW_FPRS.values())},
        "max_auc": NO_GROUP, "max_tpr_at_0.1pct_fpr": NO_GROUP,
        "mean_token_loss": frozenset({"members", "non_members"}),
    })

    class Config(ProbeConfig):
        documents: Path | None = None  # JSONL of {"text", "member"}; default: the pretraining recipe's split
        max_documents_per_side: Count = 500  # a seeded sample of members and of non-members, each at most this
        min_k_percent: float = Field(20.0, gt=0.0, le=100.0)  # Min-K% Prob's k
        reference_model: Path | None = None  # a causal LM folder that never saw the documents
        batch_size: Count = 32
        n_bootstrap: BootstrapResamples = 1000
        warn_auc: float = Field(0.6, gt=0.5, le=1.0)
        # "no leakage" is a pass only when the best attack's AUC interval stays at most 0.5 + this
        chance_auc_margin: float = Field(0.05, gt=0.0, lt=0.5)
        fail_tpr_at_1pct_fpr: float = Field(0.1, gt=0.0, le=1.0)
        examples_shown: ShownCount = 3

    def declared_metrics(self):
        used = frozenset(ATTACKS if self.config.reference_model is not None else ATTACKS[:-1])
        return {name: used if groups == frozenset(ATTACKS) else groups for name, groups in self.metrics.items()}

    def run(self, ctx: ProbeContext) -> ProbeResult:
        config = self.config
        reference = self._reference_subject() if config.reference_model is not None else None
        documents = load_membership_documents(ctx, config.documents)
        documents = balanced_sample(documents, config.max_documents_per_side,
                                    np.random.default_rng(derive_seed(ctx.seed, "lm-membership-sample")))
        ctx.progress(f"lm_membership: scoring {len(documents.texts)} documents")
        token_logprobs = document_token_logprobs(ctx.subject, documents.texts, batch_size=config.batch_size)
        losses = mean_loss(token_logprobs)
        scores = {
            "loss": attacks.loss_attack(-losses),
            "zlib": zlib_ratio_score(losses, documents.texts),
            "min_k": min_k_percent_score(token_logprobs, config.min_k_percent),
        }
        warnings = []
        if reference is not None:
            reference_losses = mean_loss(document_token_logprobs(reference, documents.texts,
                                                                 batch_size=config.batch_size))
            scores["reference"] = reference_losses - losses
        else:
            warnings.append("the reference-model attack was skipped: no reference_model (a causal LM folder that "
                            "never saw these documents) was given")
        rng = np.random.default_rng(derive_seed(ctx.seed, "lm-membership-bootstrap"))
        evaluations = {name: attacks.evaluate_attack(values, documents.members, rng=rng, fprs=tuple(LOW_FPRS),
                                                     n_resamples=config.n_bootstrap)
                       for name, values in scores.items()}
        return self._result(ctx, documents, losses, scores, evaluations, warnings)

    def _reference_subject(self):
        from audit.subject import ModelUnderAudit, SubjectLoadError

        try:
            reference = ModelUnderAudit.from_pretrained(self.config.reference_model)
        except (SubjectLoadError, OSError, ValueError) as error:
            raise ProbeInputError(f"reference_model {str(self.config.reference_model)!r}: {error}") from None
        if "causal-lm" not in reference.capabilities:
            raise ProbeInputError(f"reference_model {str(self.config.reference_model)!r} is not a causal LM; "
                                  "expected a …ForCausalLM / …LMHeadModel folder")
        return reference

    def _result(self, ctx, documents, losses, scores, evaluations, warnings) -> ProbeResult:
        members = documents.members
        n = len(members)
        metrics = []
        rows = []
        for name, evaluation in evaluations.items():
            metrics.append(_metric("auc", name, evaluation.auc, n, f"ROC AUC of the {ATTACK_LABELS[name]} attack"))
            for fpr, key in LOW_FPRS.items():
                metrics.append(_metric(key, name, evaluation.tpr_at_fpr[fpr], n,
                                       f"TPR at {fpr:.1%} FPR of the {ATTACK_LABELS[name]} attack"))
            rows.append([ATTACK_LABELS[name], _cell(evaluation.auc, ".3f"),
                         *(_cell(evaluation.tpr_at_fpr[fpr], ".1%") for fpr in LOW_FPRS)])
        best_auc = max(evaluations, key=lambda name: evaluations[name].auc.value)
        best_low = max(evaluations, key=lambda name: evaluations[name].tpr_at_fpr[0.001].value)
        metrics.append(_metric("max_auc", None, evaluations[best_auc].auc, n,
                               f"strongest attack ({ATTACK_LABELS[best_auc]})"))
        metrics.append(_metric("max_tpr_at_0.1pct_fpr", None, evaluations[best_low].tpr_at_fpr[0.001], n,
                               f"strongest attack ({ATTACK_LABELS[best_low]})"))
        for group, side in (("members", members), ("non_members", ~members)):
            metrics.append(Metric(name="mean_token_loss", group=group, value=float(losses[side].mean()),
                                  higher_is_better=None, n=int(side.sum()),
                                  description="mean next-token loss (nats) of the documents"))
        n_out = int((~members).sum())
        tables = [Table(
            name="attacks", title="Attack success", columns=["attack", "AUC [95% CI]", "TPR @ 1% FPR",
                                                             "TPR @ 0.1% FPR"],
            rows=rows,
            caption=f"{int(members.sum())} members and {n_out} non-members: {documents.source}. 95% stratified "
                    f"bootstrap intervals; mean loss {losses[members].mean():.3f} (members) vs "
                    f"{losses[~members].mean():.3f} (non-members) nats per token.",
        )]
        series = []
        for name in evaluations:
            fpr, tpr = attacks.roc_on_log_grid(scores[name][members], scores[name][~members])
            series.append({"label": ATTACK_LABELS[name], "x": _rounded(fpr), "y": _rounded(tpr)})
        series.append({"label": "chance", "x": series[0]["x"], "y": series[0]["x"]})
        figures = [Figure(name="roc", title="Membership-inference ROC on pretraining documents (log-log)", kind="roc",
                          data={"series": series}, x_label="false-positive rate", y_label="true-positive rate",
                          log_scale=True)]
        order = np.argsort(-scores[best_auc], kind="stable")
        examples = [Example(title="Member the strongest attack is surest of", fields={
            "document": documents.texts[i][:200] + ("…" if len(documents.texts[i]) > 200 else ""),
            "mean loss (nats/token)": round(float(losses[i]), 3),
            "attack": ATTACK_LABELS[best_auc],
        }) for i in [i for i in order if members[i]][:self.config.examples_shown]]
        per_example = {"example_ids": [f"document-{i}" for i in range(n)],
                       "member": [bool(value) for value in members],
                       **{f"score_{name}": _rounded(values) for name, values in scores.items()}}
        message = ("Scoring: causal language model, next-token log-probabilities of each document, in windows of at "
                   f"most {ctx.subject.max_length - 1} tokens; {ctx.subject.sentence_logprob_note}.")
        return self.new_result(metrics=metrics, tables=tables, figures=figures, examples=examples,
                               findings=self._findings(evaluations, best_auc, n_out), warnings=warnings,
                               per_example=per_example, message=message)

    def _findings(self, evaluations, best_auc, n_out) -> list[Finding]:
        config = self.config
        auc = evaluations[best_auc].auc
        verdict = chance_auc_verdict(auc, margin=config.chance_auc_margin,
                                     separated="pretraining documents from held-out ones")
        if verdict is not None:
            findings = [Finding(level=verdict[0], metric="max_auc", message=verdict[1])]
        else:
            findings = [Finding(level="warn" if auc.value >= config.warn_auc else "info", metric="max_auc", message=(
                f"The {ATTACK_LABELS[best_auc]} attack tells pretraining documents from held-out ones with AUC "
                f"{auc.value:.3f} (95% CI {auc.ci_low:.3f}–{auc.ci_high:.3f}; 0.5 is chance)."))]
        best = max(evaluations, key=lambda name: evaluations[name].tpr_at_fpr[0.01].value)
        tpr = evaluations[best].tpr_at_fpr[0.01]
        caveat = f" (measured at zero false alarms: only {n_out} non-members)" if n_out < 100 else ""
        findings.append(Finding(
            level="fail" if tpr.value >= config.fail_tpr_at_1pct_fpr else "info", metric="tpr_at_1pct_fpr",
            message=(f"At 1% false alarms the {ATTACK_LABELS[best]} attack picks out {tpr.value:.1%} of pretraining "
                     f"documents (95% CI {tpr.ci_low:.1%}–{tpr.ci_high:.1%}; chance is 1%){caveat}."),
        ))
        return findings


def _metric(name: str, group: str | None, estimate: attacks.Estimate, n: int, description: str) -> Metric:
    return Metric(name=name, group=group, value=estimate.value, ci_low=estimate.ci_low, ci_high=estimate.ci_high,
                  higher_is_better=False, n=n, description=description)


def _cell(estimate: attacks.Estimate, spec: str) -> str:
    return f"{estimate.value:{spec}} [{estimate.ci_low:{spec}}, {estimate.ci_high:{spec}}]"


def _rounded(values) -> list[float]:
    return [round(float(value), 6) for value in values]
