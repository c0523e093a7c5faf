"""Shared fixtures of the whole test suite."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

# Every probe run in the test suite checks that the metrics it writes are ones it declares (Probe.execute), so
# the declarations that `run --policy` checks rules against before an audit stay true.
os.environ.setdefault("RAI_AUDIT_CHECK_DECLARATIONS", "1")
# Nothing in the test suite touches the network: a hub model id that slips through resolves from the (empty)
# Hugging Face cache and fails, rather than downloading. Set before huggingface_hub is imported, which reads it then.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# ------------------------------------------------------------------------------------------------------------------
# Real-data trained models (audit.train) — session-scoped, built once and reused by every slow test that needs them.
#   small_pretrained_dir     the `small` preset pretrained on wiki_passages, with canaries (canaries.json beside it)
#   davidson_classifier_dir  small_pretrained_dir fine-tuned on Davidson abusive-vs-neither (finetune_davidson preset)
# Both need RAI_AUDIT_DATA_DIR (CI sets it); use them only from @pytest.mark.slow tests.
#
# Every model trained here is pinned to fp32 (TEST_PRECISION). On "auto" a CPU with bf16 units trains in bf16 and
# one without in fp32, which gives two different models from one recipe; pinned, every CPU trains the same recipe in
# the same arithmetic, and what is left between CPUs is fp32 rounding (different SIMD kernels), which the known-
# answer tests tolerate. The product's default stays "auto".
# ------------------------------------------------------------------------------------------------------------------
TEST_PRECISION = "fp32"


def _real_data_dir() -> Path:
    data_dir = os.environ.get("RAI_AUDIT_DATA_DIR", "").strip()
    if not data_dir:
        pytest.skip("RAI_AUDIT_DATA_DIR is not set; real-data tests need the shared data folder")
    return Path(data_dir)


@pytest.fixture(scope="session")
def small_pretrained_dir(tmp_path_factory) -> Path:
    from audit.train.config import load_pretrain_config
    from audit.train.pretrain import pretrain

    data_dir = _real_data_dir()
    out = tmp_path_factory.mktemp("small_pretrained") / "model"
    config = load_pretrain_config("small")
    config = config.model_copy(update={"train": config.train.model_copy(update={"precision": TEST_PRECISION})})
    return pretrain(config, out, data_dir=data_dir)


@pytest.fixture(scope="session")
def davidson_classifier_dir(tmp_path_factory, small_pretrained_dir) -> Path:
    from audit.train.config import load_finetune_config
    from audit.train.finetune import run_finetune

    data_dir = _real_data_dir()
    out = tmp_path_factory.mktemp("davidson_classifier") / "model"
    config = load_finetune_config("davidson").model_copy(update={"precision": TEST_PRECISION})
    return run_finetune(config, small_pretrained_dir, out, data_dir=data_dir)


# ------------------------------------------------------------------------------------------------------------------
# The default audit's own models — the known answers of the bias, fairness, attribution, gate and compare tests.
#   demo_pretrained_dir              the default audit's pretraining recipe (`demo` preset, canaries)
#   scenario_classifiers["planted"]  its fine-tuning recipe on make_calibration_scenario(bias_strength=0.8)
#   scenario_classifiers["control"]  the same texts, groups and splits with no flipped labels (bias_strength=0)
# Both classifiers start from demo_pretrained_dir with the same seed. The recipes are read from
# audit.config.DEFAULT_AUDIT, so these tests check the models the default audit trains.
# ------------------------------------------------------------------------------------------------------------------
SCENARIO_BIAS = {"planted": 0.8, "control": 0.0}


def _default_recipe(stage: str) -> dict:
    from audit.config import DEFAULT_AUDIT

    return copy.deepcopy(DEFAULT_AUDIT["subject"]["train"][stage])


@pytest.fixture(scope="session")
def demo_pretrained_dir(tmp_path_factory) -> Path:
    from audit.train.config import pretrain_config_from_dict
    from audit.train.pretrain import pretrain

    data_dir = _real_data_dir()
    recipe = _default_recipe("pretrain")
    recipe["train"] = {**recipe.get("train", {}), "precision": TEST_PRECISION}
    config = pretrain_config_from_dict(recipe, source="the default audit's pretraining recipe")
    return pretrain(config, tmp_path_factory.mktemp("demo_pretrained") / "model", data_dir=data_dir)


@pytest.fixture(scope="session")
def scenario_classifiers(tmp_path_factory, demo_pretrained_dir) -> dict[str, Path]:
    from audit.train.config import finetune_config_from_dict
    from audit.train.finetune import run_finetune

    root = tmp_path_factory.mktemp("scenario_classifiers")
    directories = {}
    for name, strength in SCENARIO_BIAS.items():
        recipe = _default_recipe("finetune")
        recipe["precision"] = TEST_PRECISION
        recipe["data"]["scenario"]["bias_strength"] = strength
        config = finetune_config_from_dict(recipe, source="the default audit's fine-tuning recipe")
        directories[name] = run_finetune(config, demo_pretrained_dir, root / name)
    return directories


# ------------------------------------------------------------------------------------------------------------------
# Calibration-scenario *decoder* classifiers (issue 17, known answer d), sized for CI:
#   causal_scenario_classifiers["planted"|"control"]  a small causal LM (`tiny-causal` widened to hidden 64, a
#   2,000-word tokenizer, 150 next-token steps) fine-tuned on the scenario (bias 0.8 / 0) with last-token pooling.
# ------------------------------------------------------------------------------------------------------------------
CAUSAL_SCENARIO_PRETRAIN = {
    "preset": "tiny-causal",
    "model": {"hidden_size": 64, "intermediate_size": 128},
    "tokenizer": {"vocab_size": 2000},
    "corpus": {"max_documents": 2000, "max_length": 64},
    "train": {"max_steps": 150, "batch_size": 16, "eval_every": 50, "checkpoint_every": 150,
              "precision": TEST_PRECISION},
}
CAUSAL_SCENARIO_FINETUNE = {"preset": "scenario", "epochs": 5, "precision": TEST_PRECISION}


@pytest.fixture(scope="session")
def causal_scenario_classifiers(tmp_path_factory) -> dict[str, Path]:
    from audit.train.config import finetune_config_from_dict, pretrain_config_from_dict
    from audit.train.finetune import run_finetune
    from audit.train.pretrain import pretrain

    data_dir = _real_data_dir()
    root = tmp_path_factory.mktemp("causal_scenario")
    pretrained = pretrain(pretrain_config_from_dict(CAUSAL_SCENARIO_PRETRAIN, source="test"), root / "pretrained",
                          data_dir=data_dir)
    directories = {}
    for name, strength in SCENARIO_BIAS.items():
        config = finetune_config_from_dict({**CAUSAL_SCENARIO_FINETUNE, "data": {
            "scenario": {"bias_strength": strength, "n_examples": 2000, "seed": 0}}})
        directories[name] = run_finetune(config, pretrained, root / name)
    return directories
