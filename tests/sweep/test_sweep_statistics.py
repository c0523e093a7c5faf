"""Leaderboard statistics on synthetic results: rank intervals, paired differences against the baseline (compare's
tests, Holm-corrected) and recipe differences against seed noise (Welch)."""

from __future__ import annotations

import numpy as np
import pytest

from audit.results import AuditResults, Metric, ProbeResult, RunInfo, SubjectInfo
from audit.sweep.leaderboard import FinishedCell, build_leaderboard, leaderboard_csv, seed_variance_csv
from audit.sweep.ranks import BOOTSTRAP_METHOD, INTERVAL_METHOD, rank_intervals
from audit.sweep.seeds import recipe_differences, seed_spread, welch_p_value
from reports import render_leaderboard_html


def _results(name: str, metrics: list[Metric], per_example: dict | None = None) -> AuditResults:
    probe = ProbeResult(probe="toy", version="1", family="bias", citation="test", metrics=metrics,
                        per_example=per_example or {})
    run = RunInfo(id=name, started="2026-01-01T00:00:00Z", duration_s=1.0, seed=0, threads=1, package_versions={})
    return AuditResults(run=run, probes=[probe], subject=SubjectInfo(
        path=f"/models/{name}", name=name, model_type="t", sha256="0" * 64, parameters=1, tokenizer="t",
        capabilities=["classifier"]))


def _correct_cell(name: str, rate: float, n: int = 400, seed: int = 0) -> FinishedCell:
    """A cell whose metric ``accuracy`` is the mean of a per-example ``accuracy`` column (compare's convention)."""
    outcomes = np.random.default_rng(seed).random(n) < rate
    metric = Metric(name="accuracy", value=float(outcomes.mean()), ci_low=float(outcomes.mean()) - 0.05,
                    ci_high=float(outcomes.mean()) + 0.05, higher_is_better=True, n=n)
    per_example = {"example_ids": [str(i) for i in range(n)], "accuracy": [bool(v) for v in outcomes]}
    return FinishedCell(label=name, subject=name, seed=None, results=_results(name, [metric], per_example))


def test_ranks_bootstrap_over_examples_separate_clear_winners_and_tie_close_ones():
    cells = [_correct_cell("weak", 0.5, seed=1), _correct_cell("strong", 0.9, seed=2),
             _correct_cell("weak-twin", 0.5, seed=3)]
    metrics = [cell.results.probes[0].metrics[0] for cell in cells]
    ranks, intervals, method, _ = rank_intervals(metrics, [c.results.probes[0] for c in cells],
                                              rng=np.random.default_rng(0))
    assert method == BOOTSTRAP_METHOD
    assert ranks[1] == 1 and intervals[1] == (1, 1)  # 0.9 against 0.5 on 400 examples: always first
    assert intervals[0] == (2, 3) and intervals[2] == (2, 3)  # the two 0.5s swap places


def test_ranks_fall_back_to_intervals_without_per_example_values():
    metrics = [Metric(name="gap", value=0.1, ci_low=0.05, ci_high=0.15, higher_is_better=False),
               Metric(name="gap", value=0.5, ci_low=0.45, ci_high=0.55, higher_is_better=False),
               Metric(name="gap", value=0.12, ci_low=0.0, ci_high=0.24, higher_is_better=False)]
    probes = [ProbeResult(probe="toy", version="1", family="bias", citation="t", metrics=[m]) for m in metrics]
    ranks, intervals, method, _ = rank_intervals(metrics, probes, rng=np.random.default_rng(0))
    assert method == INTERVAL_METHOD
    assert ranks == [1, 3, 2]
    assert intervals[1] == (3, 3) and intervals[0] == (1, 2) and intervals[2] == (1, 2)


def test_group_gap_is_recomputed_from_group_metrics_per_example_columns():
    labels = ["female", "male"] * 50
    predictions = [label == "male" for label in labels]  # male always positive, female never: gap 1.0
    metric = Metric(name="selection_rate_gap", value=1.0, ci_low=0.9, ci_high=1.0, higher_is_better=False,
                    group="gender=male vs gender=female")
    flat = Metric(name="selection_rate_gap", value=0.0, ci_low=-0.1, ci_high=0.1, higher_is_better=False,
                  group="gender=male vs gender=female")
    per_example = {"example_ids": [str(i) for i in range(100)], "group:gender": labels}
    probes = [ProbeResult(probe="group_metrics", version="1", family="fairness", citation="t", metrics=[m],
                          per_example={**per_example, "positive_prediction": p})
              for m, p in ((metric, predictions), (flat, [True] * 100))]
    ranks, intervals, method, _ = rank_intervals([metric, flat], probes, rng=np.random.default_rng(0))
    assert method == BOOTSTRAP_METHOD and ranks == [2, 1] and intervals == [(2, 2), (1, 1)]
    wrong = metric.model_copy(update={"value": 0.5})  # not what the columns give: no bootstrap on them
    assert rank_intervals([wrong, flat], probes, rng=np.random.default_rng(0))[2] == INTERVAL_METHOD


def test_baseline_differences_use_compares_paired_test_with_holm():
    cells = [_correct_cell("base", 0.6, seed=1), _correct_cell("better", 0.85, seed=2),
             _correct_cell("same", 0.6, seed=3)]
    board = build_leaderboard(cells, baseline="base", failed=[], n_cells=3).boards[0]
    rows = {row.cell: row for row in board.rows}
    assert rows["base"].call == "baseline"
    assert rows["better"].call == "better" and rows["better"].method == "McNemar (paired)"
    assert rows["better"].p_holm < 0.001
    assert rows["same"].call == "no significant difference"
    # Holm over the two comparisons: the smaller p doubled, the larger kept (it is at least the first's)
    assert rows["better"].p_holm == pytest.approx(2 * rows["better"].p_value)
    assert rows["same"].p_holm == pytest.approx(max(rows["same"].p_value, rows["better"].p_holm))
    text = leaderboard_csv(build_leaderboard(cells, baseline="base", failed=[], n_cells=3))
    assert text.splitlines()[0].startswith("probe,metric,group,cell") and len(text.splitlines()) == 4


def test_welch_separates_recipes_beyond_seed_noise_and_not_within_it():
    planted = seed_spread("planted", [0, 1, 2], [0.41, 0.36, 0.44])
    control = seed_spread("control", [0, 1, 2], [0.02, -0.03, 0.05])
    control_other = seed_spread("control-b", [3, 4, 5], [0.0, 0.06, -0.02])
    tests = {(t.first, t.second): t for t in recipe_differences([planted, control, control_other])}
    assert tests[("planted", "control")].verdict == "differs beyond seed noise"
    assert tests[("control", "control-b")].verdict == "not distinguishable from seed noise"
    assert tests[("planted", "control")].p_holm >= tests[("planted", "control")].p_value  # corrected
    assert welch_p_value([0.1, 0.1], [0.2, 0.2]) is None  # no spread at all: nothing to test against


def test_leaderboard_reports_seed_spread_per_recipe():
    cells = []
    for recipe, values in {"planted": [0.4, 0.35, 0.45], "control": [0.0, 0.05, -0.02]}.items():
        for seed, value in enumerate(values):
            metric = Metric(name="gap", value=value, ci_low=value - 0.1, ci_high=value + 0.1, higher_is_better=False)
            cells.append(FinishedCell(label=f"{recipe}/seed={seed}", subject=recipe, seed=seed,
                                      results=_results(recipe, [metric])))
    board = build_leaderboard(cells, baseline="control", failed=[], n_cells=6,
                              recipes={"planted": [0, 1, 2], "control": [0, 1, 2]})
    spreads = {spread.recipe: spread for spread in board.boards[0].spreads}
    assert spreads["planted"].mean == pytest.approx(0.4) and spreads["planted"].sd == pytest.approx(0.05)
    assert board.boards[0].recipe_tests[0].verdict == "differs beyond seed noise"
    assert "differs beyond seed noise" in seed_variance_csv(board)


def test_a_draw_where_a_metric_is_undefined_has_no_rank_rather_than_the_worst():
    """A rate gap whose group has one member is undefined in the resamples that miss it (about (19/20)^20 ≈ 36% of
    them); those draws say nothing about its place, so they must not rank it last."""
    ids = [str(i) for i in range(20)]
    rare_groups = ["a"] + ["b"] * 19  # group a: one example, never selected; b: always selected → gap −1
    balanced = ["a"] * 10 + ["b"] * 10

    def probe(groups, positives, value):
        metric = Metric(name="selection_rate_gap", value=value, ci_low=value - 0.1, ci_high=value + 0.1,
                        higher_is_better=False, group="g=a vs g=b")
        return metric, ProbeResult(probe="group_metrics", version="1", family="fairness", citation="t",
                                   metrics=[metric], per_example={"example_ids": ids, "group:g": groups,
                                                                  "positive_prediction": positives})

    cases = [probe(rare_groups, [False] + [True] * 19, -1.0),  # best whenever defined
             probe(balanced, [True] * 20, 0.0),
             probe(balanced, [True] * 10 + [True, False] * 5, 0.5)]
    ranked = rank_intervals([m for m, _ in cases], [p for _, p in cases], rng=np.random.default_rng(0),
                            n_resamples=1000)
    assert ranked.method == BOOTSTRAP_METHOD and ranked.ranks == [1, 2, 3]
    assert ranked.intervals == [(1, 1), (1, 2), (2, 3)]  # the others move up a place when the rare gap is undefined
    assert 300 < ranked.undefined_draws[0] < 420 and ranked.undefined_draws[1:] == [0, 0]
    cells = [FinishedCell(label=name, subject=name, seed=None, results=_results(name, [m], p.per_example))
             for name, (m, p) in zip(("rare", "flat", "half"), cases)]
    board = build_leaderboard(cells, baseline="flat", failed=[], n_cells=3, n_bootstrap=1000)
    [rare] = [row for row in board.boards[0].rows if row.cell == "rare"]
    assert (rare.rank_low, rare.rank_high) == (1, 1) and rare.rank_undefined == ranked.undefined_draws[0]
    assert f",{rare.rank_undefined}," in leaderboard_csv(board).splitlines()[1]
    assert f"undefined in {rare.rank_undefined} of 1000 resamples" in render_leaderboard_html(board)
