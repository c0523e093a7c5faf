"""subgroup_auc: a planted identity bias is found in the right AUC; the metrics agree with sklearn."""

from __future__ import annotations

import numpy as np
from fairness_fakes import ScriptedClassifier, make_task
from sklearn.metrics import roc_auc_score

from probes.base import ProbeContext
from probes.fairness.subgroup_auc import SubgroupAUCProbe, subgroup_aucs, subgroup_masks


def _planted_task(seed: int = 0, n: int = 800):
    """Non-toxic texts mentioning 'gay' get toxic-looking scores (false-positive bias); 'muslim' is a control."""
    rng = np.random.default_rng(seed)
    rows, table = [], {}
    for index in range(n):
        term = ["gay", "muslim", "tree"][index % 3]
        toxic = int(rng.random() < 0.4)
        score = 0.25 + 0.5 * toxic + rng.normal(0, 0.12)
        if term == "gay" and not toxic:
            score += 0.4
        score = float(np.clip(score, 0.0, 1.0))
        text = f"comment {index} about a {term} person"
        table[text] = [1 - score, score]
        rows.append((f"c{index:04d}", text, toxic, "test", {}))
    return make_task(rows, label_names=("ok", "toxic"), group_columns=()), table


def test_planted_false_positive_bias_shows_in_bpsn_only():
    task, table = _planted_task()
    probe = SubgroupAUCProbe({"terms": ["gay", "muslim"], "n_resamples": 200})
    result = probe.run(ProbeContext(subject=ScriptedClassifier(table), seed=0, task=task))
    overall = result.metric("overall_auc").value
    gay_bpsn, gay_bnsp = result.metric("bpsn_auc", "gay"), result.metric("bnsp_auc", "gay")
    assert gay_bpsn.ci_high < overall - 0.1  # over-flagging of harmless mentions is detected
    assert gay_bnsp.value > overall  # and it is not mistaken for missed toxicity
    # the control stays quiet: its harmless mentions are not over-flagged (its BNSP shares the biased
    # background, so it is only required not to fall clearly below the overall AUC — no finding)
    assert result.metric("bpsn_auc", "muslim").ci_high >= overall
    assert any("gay" in finding.message and finding.level == "warn" for finding in result.findings)
    assert not any("muslim" in finding.message for finding in result.findings if finding.level != "inconclusive")
    # ... and, sharing the biased background, its BNSP interval reaches below the band: no pass for it either
    undecided = [finding.message for finding in result.findings if finding.level == "inconclusive"]
    assert undecided == [] or all("'muslim' BNSP AUC" in message for message in undecided), undecided
    assert not any(finding.level == "pass" for finding in result.findings)


def test_auc_definitions_match_sklearn():
    rng = np.random.default_rng(3)
    scores = rng.random(300)
    labels = rng.random(300) < scores
    mention = rng.random(300) < 0.3
    results = subgroup_aucs(scores, labels, {"t": mention}, n_resamples=0, rng=rng)
    for kind, rows in subgroup_masks(labels, mention).items():
        assert results["t"][kind][0] == roc_auc_score(labels[rows], scores[rows]) or abs(
            results["t"][kind][0] - roc_auc_score(labels[rows], scores[rows])) < 1e-12
    assert abs(results["__overall__"]["overall_auc"][0] - roc_auc_score(labels, scores)) < 1e-12
