"""examples/audit_causal.toml validates as an audit config, names a causal pretraining and the calibration
scenario, and its probe settings are valid; training it says it pretrains a decoder (the recipe is not run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit.config import load_audit_config
from audit.train.config import finetune_config_from_dict, pretrain_config_from_dict
from probes.base import available_probes, get_probe

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audit_causal.toml"


def test_causal_example_is_a_valid_recipe():
    config = load_audit_config(EXAMPLE)
    pretrain = pretrain_config_from_dict(config.subject.train.pretrain, source="example")
    finetune = finetune_config_from_dict(config.subject.train.finetune, source="example")
    assert pretrain.train.objective == "causal" and pretrain.canaries.count == 10
    assert finetune.data.name == "calibration_scenario"
    assert config.probes.run == ["all"]
    probes = available_probes()
    for name, settings in config.probes.settings.items():
        assert name in probes
        get_probe(name)(settings)  # raises ProbeInputError on a bad setting


@pytest.mark.skipif(not os.environ.get("RAI_AUDIT_DATA_DIR"), reason="needs the shared data (RAI_AUDIT_DATA_DIR)")
def test_training_the_causal_recipe_announces_a_decoder(tmp_path, monkeypatch):
    import audit.train.pretrain
    from audit.progress import ProgressReporter
    from audit.runner import train_subject

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    class Notes(ProgressReporter):
        def note(self, message: str) -> None:
            messages.append(message)

    monkeypatch.setattr(audit.train.pretrain, "pretrain", stop)
    messages: list[str] = []
    with pytest.raises(Stop):
        train_subject(load_audit_config(EXAMPLE).subject.train, cache_dir=tmp_path,
                      data_dir=Path(os.environ["RAI_AUDIT_DATA_DIR"]), progress=Notes())
    assert messages == ["pretraining the subject's decoder (next-token prediction)"]
