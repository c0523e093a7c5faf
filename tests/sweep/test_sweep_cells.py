"""Cells of a sweep: one per subject and seed, keyed by their audit config; seeds reach the recipe's stages; the
Ray executor pretrains each recipe not in the training cache once, before the cells that share it."""

from __future__ import annotations

from audit.runner import pretrained_cache_dir
from audit.sweep.cells import build_cells
from audit.sweep.executors import by_pretraining_to_do
from audit.sweep.spec import sweep_spec_from_dict


def _spec(**subject_extra):
    recipe = {"pretrain": "tiny", "finetune": {"preset": "scenario"}}
    return sweep_spec_from_dict({
        "probes": {"run": ["group_metrics"]},
        "subjects": [{"name": "recipe", "train": recipe, "seeds": [3, 4], **subject_extra},
                     # the same pretraining spelt as a table: one cache folder, pretrained once
                     {"name": "other", "train": {"pretrain": {"preset": "tiny"},
                                                 "finetune": {"preset": "scenario", "epochs": 2}}, "seeds": [3]},
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
    assert cells[0].pretrained_dir() != cells[1].pretrained_dir()


def test_cells_wait_for_a_pretraining_only_while_it_is_not_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAI_AUDIT_CACHE", str(tmp_path))
    cells = build_cells(_spec(), source="sweep.toml")
    ready, waiting = by_pretraining_to_do(cells)
    assert [cell.label for cell in ready] == ["folder"]
    assert {recipe: [cell.label for cell in group] for recipe, group in waiting.items()} == {
        pretrained_cache_dir(cells[0].config.subject.train, tmp_path): ["recipe/seed=3", "recipe/seed=4",
                                                                        "other/seed=3"]}

    pretrained = pretrained_cache_dir(cells[0].config.subject.train, tmp_path)
    pretrained.mkdir(parents=True)
    (pretrained / "model.safetensors").write_bytes(b"")
    ready, waiting = by_pretraining_to_do(cells)
    assert [cell.label for cell in ready] == [cell.label for cell in cells] and not waiting
