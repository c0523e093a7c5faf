"""The sweep's leaderboard: per headline metric, a row per cell with its value, 95% interval, rank and rank
interval (``audit.sweep.ranks``), and its difference from the baseline tested with ``rai-audit compare``'s paired
statistics (``audit.compare.difference_test``), Holm-corrected over the cells compared with the baseline on that
metric; for recipes trained under several seeds, the between-seed spread and recipe-vs-recipe tests against it
(``audit.sweep.seeds``).

Headline metrics: those the sweep file names (``probe.metric``, every group of it), else each probe's overall
metrics (no group), or, for a probe reporting only per-group ones, its "a vs b" gaps.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from audit.compare import Call, difference_call, difference_test, direction_text
from audit.results import AuditResults, Metric
from audit.sweep.ranks import rank_intervals
from audit.sweep.seeds import METHOD as SEED_METHOD
from audit.sweep.seeds import RecipeDifference, SeedSpread, recipe_differences, seed_spread


@dataclass
class FinishedCell:
    label: str
    subject: str
    seed: int | None
    results: AuditResults


@dataclass
class LeaderboardRow:
    cell: str
    subject: str
    seed: int | None
    metric: Metric
    rank: int | None = None
    rank_low: int | None = None
    rank_high: int | None = None
    rank_undefined: int = 0  # resamples in which this cell's metric was undefined (left out of its interval)
    difference: float | None = None  # this cell minus the baseline
    p_value: float | None = None
    p_holm: float | None = None
    call: Call | str = ""
    method: str = ""


@dataclass
class MetricBoard:
    probe: str
    metric: str
    group: str | None
    direction: str
    rank_method: str
    rows: list[LeaderboardRow]
    rank_draws: int = 0  # resamples behind the rank intervals
    spreads: list[SeedSpread] = field(default_factory=list)
    recipe_tests: list[RecipeDifference] = field(default_factory=list)


@dataclass
class Leaderboard:
    baseline: str
    boards: list[MetricBoard]
    failed: list[dict]
    n_cells: int
    seed_method: str = SEED_METHOD


def headline_keys(cells: list[FinishedCell], wanted: list[str] | None) -> list[tuple[str, str, str | None]]:
    """(probe, metric, group) of the leaderboard's metrics, in the order the cells report them."""
    keys: dict[tuple[str, str, str | None], None] = {}
    for cell in cells:
        for probe in cell.results.probes:
            if probe.status != "ok":
                continue
            overall = any(metric.group is None for metric in probe.metrics)
            for metric in probe.metrics:
                if metric.value is None:
                    continue
                if wanted is not None:
                    chosen = f"{probe.probe}.{metric.name}" in wanted
                else:
                    chosen = metric.group is None if overall else " vs " in metric.group
                if chosen:
                    keys[(probe.probe, metric.name, metric.group)] = None
    return list(keys)


def build_leaderboard(cells: list[FinishedCell], *, baseline: str, failed: list[dict], n_cells: int,
                      metrics: list[str] | None = None, recipes: dict[str, list[int]] | None = None,
                      n_bootstrap: int = 2000) -> Leaderboard:
    """``baseline``: a subject name (its first cell is the reference); ``recipes``: subject → seeds, for the
    subjects trained under two or more seeds."""
    rng = np.random.default_rng(0)
    boards = []
    for probe_name, metric_name, group in headline_keys(cells, metrics):
        entries = []
        for cell in cells:
            probe = next((p for p in cell.results.probes if p.probe == probe_name and p.status == "ok"), None)
            metric = probe and next((m for m in probe.metrics if m.name == metric_name and m.group == group), None)
            if metric is not None and metric.value is not None:
                entries.append((cell, probe, metric))
        rows = [LeaderboardRow(cell=c.label, subject=c.subject, seed=c.seed, metric=m) for c, _, m in entries]
        ranked = rank_intervals([m for _, _, m in entries], [p for _, p, _ in entries], rng=rng,
                                n_resamples=n_bootstrap)
        rank_method = ""
        if ranked is not None:
            rank_method = ranked.method
            for row, rank, (low, high), undefined in zip(rows, ranked.ranks, ranked.intervals,
                                                         ranked.undefined_draws):
                row.rank, row.rank_low, row.rank_high, row.rank_undefined = rank, low, high, undefined
        _test_against_baseline(rows, entries, baseline, rng)
        board = MetricBoard(probe=probe_name, metric=metric_name, group=group, direction=direction_text(rows[0].metric),
                            rank_method=rank_method, rows=sorted(rows, key=lambda r: (r.rank or len(rows) + 1)),
                            rank_draws=n_bootstrap if ranked is not None else 0)
        for recipe, seeds in (recipes or {}).items():
            values = {row.seed: row.metric.value for row in rows if row.subject == recipe}
            present = [seed for seed in seeds if seed in values]
            if len(present) >= 2:
                board.spreads.append(seed_spread(recipe, present, [values[seed] for seed in present]))
        board.recipe_tests = recipe_differences(board.spreads)
        boards.append(board)
    return Leaderboard(baseline=baseline, boards=boards, failed=failed, n_cells=n_cells)


def _test_against_baseline(rows: list[LeaderboardRow], entries, baseline: str, rng: np.random.Generator) -> None:
    from probes.stats import holm

    reference = next((index for index, row in enumerate(rows) if row.subject == baseline), None)
    if reference is None:
        for row in rows:
            row.call, row.method = "not comparable", "baseline missing"
        return
    _, ref_probe, ref_metric = entries[reference]
    rows[reference].call = "baseline"
    tested = []
    for index, (row, (_, probe, metric)) in enumerate(zip(rows, entries)):
        if index == reference:
            continue
        row.difference = metric.value - ref_metric.value
        row.p_value, row.method = difference_test(ref_metric, metric, ref_probe, probe, rng)
        if row.p_value is not None:
            tested.append(row)
        else:
            row.call = "not comparable"
    for row, adjusted in zip(tested, holm([row.p_value for row in tested]) if tested else []):
        row.p_holm = float(adjusted)
        row.call = difference_call(ref_metric, row.metric, row.p_holm)


CSV_COLUMNS = ("probe", "metric", "group", "cell", "subject", "seed", "value", "ci_low", "ci_high", "rank",
               "rank_low", "rank_high", "rank_method", "rank_undefined_draws", "difference_vs_baseline", "p_value",
               "p_holm", "call_vs_baseline", "test_method")
SEED_CSV_COLUMNS = ("probe", "metric", "group", "first", "second", "difference", "p_value", "p_holm", "verdict",
                    "method")


def _csv_text(columns: tuple[str, ...], rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def leaderboard_csv(board: Leaderboard) -> str:
    return _csv_text(CSV_COLUMNS, (
        [metric_board.probe, metric_board.metric, metric_board.group or "", row.cell, row.subject, _cell(row.seed),
         _cell(row.metric.value), _cell(row.metric.ci_low), _cell(row.metric.ci_high), _cell(row.rank),
         _cell(row.rank_low), _cell(row.rank_high), metric_board.rank_method,
         _cell(row.rank_undefined if metric_board.rank_method else None), _cell(row.difference),
         _cell(row.p_value), _cell(row.p_holm), row.call, row.method]
        for metric_board in board.boards for row in metric_board.rows))


def seed_variance_csv(board: Leaderboard) -> str:
    return _csv_text(SEED_CSV_COLUMNS, (
        [metric_board.probe, metric_board.metric, metric_board.group or "", test.first, test.second,
         _cell(test.difference), _cell(test.p_value), _cell(test.p_holm), test.verdict, board.seed_method]
        for metric_board in board.boards for test in metric_board.recipe_tests))


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
