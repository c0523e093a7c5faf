"""Resumable training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint directory holds ``model.safetensors`` (the model's state dict, shared tensors stored once),
``optimizer.safetensors`` (every per-parameter optimizer tensor, keyed ``state.<param index>.<name>``, plus the
global torch RNG state that dropout draws from) and ``state.json`` (step, elapsed time, optimizer hyper-parameters,
and whatever the trainer adds). Directories are replaced atomically (written beside, then renamed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from audit.model_folder import check_weights_fit_config, load_config, resolved_folder, safe_weight_files
from audit.train.errors import CheckpointError

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
_RNG_KEY = "rng.torch_cpu"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def save_checkpoint(
    directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    directory = Path(directory)
    staging = directory.with_name(directory.name + ".writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_model(model, str(staging / MODEL_FILE))
    tensors, groups = _flatten_optimizer(optimizer.state_dict())
    tensors[_RNG_KEY] = torch.get_rng_state()
    save_file(tensors, str(staging / OPTIMIZER_FILE))
    payload = dict(state, optimizer_param_groups=groups)
    (staging / STATE_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    previous = directory.with_name(directory.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        directory.rename(previous)
    staging.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)


def load_checkpoint(
    directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model, optimizer and global RNG state in place; return the trainer's state dict."""
    directory = Path(directory)
    if not (directory / STATE_FILE).is_file():
        raise CheckpointError(f"{directory}: no checkpoint to resume from ({STATE_FILE} missing)")
    state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    missing, unexpected = load_model(model, str(directory / MODEL_FILE), strict=False)
    if unexpected or [key for key in missing if not key.startswith("lm_head.decoder")]:
        raise CheckpointError(f"{directory}: checkpoint does not match the model (missing {missing[:3]})")
    tensors = load_file(str(directory / OPTIMIZER_FILE))
    torch.set_rng_state(tensors.pop(_RNG_KEY))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, state.pop("optimizer_param_groups")))
    return state


def refuse_pickles(directory: str | Path) -> None:
    """Raise when ``directory`` holds pickled weights: we never load them (arbitrary code execution)."""
    found = sorted(p.name for p in Path(directory).iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        raise CheckpointError(
            f"{directory} holds pickled files ({', '.join(found)}); refusing to load pickles — "
            "expected safetensors weights (model.safetensors)"
        )


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    tensors: dict[str, torch.Tensor] = {}
    for index, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{index}.{name}"] = tensor.detach().contiguous().clone()
    groups = [_jsonable(group) for group in state_dict["param_groups"]]
    return tensors, groups


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


def _jsonable(group: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in group.items():
        if torch.is_tensor(value):
            value = value.item()
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def verify_model_dir(directory: str | Path, *, model_type: str = "rai-transformer") -> Path:
    """Check that ``directory`` is one of our HF model directories (config.json of ``model_type``, intact
    safetensors weights, tokenizer) and holds no pickle nor a link out of it; return it as a Path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"model directory {directory} does not exist; expected the output of `rai-audit pretrain`")
    refuse_pickles(directory)
    config_path = directory / "config.json"
    try:
        found_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        found_type = None
    if found_type != model_type:
        raise CheckpointError(
            f"{directory} is not a {model_type} model directory (config.json model_type {found_type!r}); "
            "expected the output of `rai-audit pretrain`"
        )
    if not (directory / MODEL_FILE).is_file():
        raise CheckpointError(f"{directory} has no {MODEL_FILE}; expected safetensors weights")
    if not (directory / "tokenizer.json").is_file():
        raise CheckpointError(f"{directory} has no tokenizer.json; expected the tokenizer saved beside the model")
    # Intact safetensors only, no link out of the folder, and a config within the size limits whose shapes match
    # the weights: checked before the data is loaded and anything is allocated.
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    folder = resolved_folder(directory)
    config = load_config(folder)
    language_model = AutoModelForCausalLM if getattr(config, "causal", False) else AutoModelForMaskedLM
    check_weights_fit_config(folder, config, language_model.from_config, safe_weight_files(folder))
    return directory
