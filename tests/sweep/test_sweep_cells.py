"""Cells of a sweep: one per subject and seed, keyed by their audit config; seeds reach the recipe's stages; the
Ray executor starts one cell per pretraining recipe before the others that share it."""

from __future__ import annotations

from audit.sweep.cells import build_cells
from audit.sweep.executors import one_per_pretraining
from audit.sweep.spec import sweep_spec_from_dict


def _spec(**subject_extra):
    recipe = {"pretrain": "tiny", "finetune": {"preset": "scenario"}}
    return sweep_spec_from_dict({
        "probes": {"run": ["group_metrics"]},
        "subjects": [{"name": "recipe", "train": recipe, "seeds": [3, 4], **subject_extra},
                     {"name": "other", "train": {**recipe, "finetune": {"preset": "scenario", "epochs": 2}},
                      "seeds": [3]},
                     {"name": "folder", "model": "models/x"}],
    })


def test_one_cell_per_subject_and_seed_with_stable_distinct_keys(tmp_path):
    cells = build_cells(_spec(), source="sweep.toml")
    assert [cell.label for cell in cells] == ["recipe/seed=3", "recipe/seed=4", "other/seed=3", "folder"]
    assert len({cell.key for cell in cells}) == 4
    assert [cell.key for cell in build_cells(_spec(), source="sweep.toml")] == [cell.key for cell in cells]
    assert cells[0].folder(tmp_path) == tmp_path / "cells" / f"recipe-seed3-{cells[0].key}"
    assert [cell.config.subject.train.finetune["seed"] for cell in cells[:3]] == [3, 4, 3]
    assert cells[0].config.subject.train.pretrain == "tiny"  # pretraining shared unless asked


def test_seed_stages_can_reseed_pretraining():
    cells = build_cells(_spec(seed_stages=["pretrain", "finetune"]), source="sweep.toml")
    assert [cell.config.subject.train.pretrain for cell in cells[:2]] == [
        {"preset": "tiny", "train": {"seed": 3}}, {"preset": "tiny", "train": {"seed": 4}}]
    assert cells[0].pretraining != cells[1].pretraining


def test_cells_sharing_a_pretraining_wait_for_the_first_of_them():
    cells = build_cells(_spec(), source="sweep.toml")
    first, followers = one_per_pretraining(cells)
    assert [cell.label for cell in first] == ["recipe/seed=3", "folder"]
    assert [cell.label for cell in followers[cells[0].pretraining]] == ["recipe/seed=4", "other/seed=3"]
