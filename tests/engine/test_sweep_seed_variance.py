"""Known answer of the seed-variance test: a recipe with a planted bias (0.8) against a control (0.0), each trained
under three seeds on the calibration scenario, differ beyond seed noise on the selection-rate gap; the control and
the same control recipe under three other seeds do not.

Trains nine tiny classifiers (one tiny pretraining, shared through the training cache) and audits each with
group_metrics over every split of a 600-example scenario: slow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit.sweep.executors import run_local
from audit.sweep.run import SEED_CSV, prepare_sweep, run_sweep
from audit.sweep.spec import load_sweep_spec

RECIPE = """
[[subjects]]
name = "{name}"
seeds = {seeds}
[subjects.train.pretrain]
preset = "tiny"
train = {{ precision = "fp32" }}
[subjects.train.finetune]
preset = "scenario"
precision = "fp32"
epochs = 12
batch_size = 16
keep = "last"
patience = 30
classifier_dropout = 0.0
hidden_dropout_prob = 0.0
data = {{ scenario = {{ bias_strength = {bias}, n_examples = 600, seed = 0 }} }}
"""
SWEEP = """
seed = 0
threads = 1
cache_dir = "{cache}"
data_dir = "{data}"
[probes]
run = ["group_metrics"]
[probes.settings.group_metrics]
split = "train+validation+test"
n_resamples = 200
intersections = false
label_base_rates = false
[leaderboard]
baseline = "control"
metrics = ["group_metrics.selection_rate_gap"]
"""


@pytest.mark.slow
def test_planted_recipe_beats_seed_noise_and_a_reseeded_control_does_not(tmp_path):
    data_dir = os.environ.get("RAI_AUDIT_DATA_DIR", "").strip()
    if not data_dir:
        pytest.skip("RAI_AUDIT_DATA_DIR is not set; the tiny pretraining reads wiki_passages")
    text = SWEEP.format(cache=tmp_path / "cache", data=data_dir) + "".join(
        RECIPE.format(name=name, seeds=seeds, bias=bias)
        for name, seeds, bias in (("planted", [1, 2, 3], 0.8), ("control", [1, 2, 3], 0.0),
                                  ("control-reseeded", [4, 5, 6], 0.0)))
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(text)
    spec = load_sweep_spec(sweep_file)
    outcome = run_sweep(spec, prepare_sweep(spec, source=str(sweep_file)), tmp_path / "out", executor=run_local)
    assert not outcome.failed, outcome.failed

    rows = [line.split(",") for line in (Path(tmp_path / "out") / SEED_CSV).read_text().splitlines()[1:]]
    verdicts = {(row[3], row[4]): row[8] for row in rows if row[2] == "gender=male vs gender=female"}
    assert verdicts[("planted", "control")] == "differs beyond seed noise", rows
    assert verdicts[("control", "control-reseeded")] == "not distinguishable from seed noise", rows
    differences = {(row[3], row[4]): float(row[5]) for row in rows}
    assert differences[("planted", "control")] < -0.15  # control minus planted: the planted gap is larger
