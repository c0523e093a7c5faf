"""Checking a model folder before anything in it is loaded: only intact safetensors files inside it are read.

Every path that opens a model folder (the audited model, the masked-LM beside a classifier, ``finetune --from``,
the membership probe's reference models) goes through ``safe_weight_files`` and ``check_weights_fit_config``:

* the folder holds no pickle, and no entry of it is a symbolic link that leaves it or cannot be followed (for a
  snapshot in the Hugging Face cache, links may reach its repository's ``blobs/``: see ``audit.hub``);
* the weights are ``model.safetensors`` or the shards a ``model.safetensors.index.json`` names — and every shard is
  a ``.safetensors`` file directly in the folder (transformers would otherwise open whatever the index names,
  a ``torch.save`` pickle or ``../../etc/hostname``);
* every weight file has an intact safetensors header (read with ``safe_open``, which also checks that the data
  covers the file exactly: a truncated, empty or pickled file fails here);
* the model that ``config.json`` describes is within the size limits of ``audit.model_size`` and its tensors
  have the shapes the weight files hold.

Each refusal is one ``SubjectLoadError`` line that names the file and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from audit.errors import InputError
from audit.model_size import config_size_problem

PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")
SINGLE_WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
WEIGHTS_SUFFIX = ".safetensors"


class SubjectLoadError(InputError):
    """A model directory cannot be loaded (missing, pickled, damaged, hostile, unknown architecture, inconsistent)."""


def resolved_folder(path: str | Path) -> Path:
    """The absolute folder behind ``path``; a symlink loop on the way is a one-line error, not a RuntimeError."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as error:
        raise SubjectLoadError(f"model directory {path} cannot be resolved ({_one_line(error)}); "
                               "expected a folder without symbolic-link loops") from None


def safe_weight_files(directory: Path, *, links_within: Path | None = None) -> list[Path]:
    """The safetensors weight file(s) of a resolved model folder, after every check above except the config's.

    ``links_within``: the folder the folder's symbolic links may point into (default: the folder itself)."""
    if not directory.is_dir():
        raise SubjectLoadError(f"model directory {directory} does not exist; expected a saved HF model folder")
    _refuse_links_leaving(directory, links_within.resolve() if links_within is not None else directory)
    if not (directory / "config.json").is_file():
        raise SubjectLoadError(f"{directory} has no config.json; expected a folder written by save_pretrained")
    pickles = sorted(p.name for pattern in PICKLE_PATTERNS for p in directory.glob(pattern))
    if pickles:
        raise SubjectLoadError(
            f"{directory} holds pickled files ({', '.join(pickles)}); refusing to load — save the model as "
            "safetensors (save_pretrained(..., safe_serialization=True)) in a folder without pickles"
        )
    if (directory / SINGLE_WEIGHTS).is_file():
        files = [directory / SINGLE_WEIGHTS]
        tensor_shapes(files)
        return files
    if (directory / WEIGHTS_INDEX).is_file():
        return _indexed_shards(directory)
    raise SubjectLoadError(f"{directory} has no {SINGLE_WEIGHTS}; expected safetensors weights")


def _refuse_links_leaving(directory: Path, root: Path) -> None:
    for entry in sorted(directory.iterdir()):
        if not entry.is_symlink():
            continue
        try:
            target = entry.resolve(strict=True)
        except (RuntimeError, OSError):
            raise SubjectLoadError(f"{entry} is a symbolic link that cannot be followed (a loop or a missing "
                                   "target); expected the model's files in the folder") from None
        if not target.is_relative_to(root):
            raise SubjectLoadError(f"{entry} is a symbolic link to {target}, outside the model folder; refusing "
                                   "to read it — copy the file into the folder")


def _indexed_shards(directory: Path) -> list[Path]:
    """The shards named by the index, each checked to be an intact ``.safetensors`` file in the folder that holds
    the tensors the index places in it."""
    index_path = directory / WEIGHTS_INDEX
    weight_map = read_json_record(index_path, "the weight index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in weight_map.items()):
        raise SubjectLoadError(f"{index_path} has no weight_map of tensor names to shard files; expected the index "
                               "written by save_pretrained")
    shards: dict[str, Path] = {}
    for name in sorted(set(weight_map.values())):
        if Path(name).name != name or not name.endswith(WEIGHTS_SUFFIX) or name.startswith("."):
            raise SubjectLoadError(f"{index_path} names the shard {name!r}; only {WEIGHTS_SUFFIX} files directly "
                                   "in the model folder are read")
        path = directory / name
        if not path.is_file():
            raise SubjectLoadError(f"{index_path} names the shard {name}, which is not in the folder")
        shards[name] = path
    held = {name: set(tensor_shapes([path])) for name, path in shards.items()}
    for tensor, name in sorted(weight_map.items()):
        if tensor not in held[name]:
            raise SubjectLoadError(f"{index_path} places {tensor} in {name}, which does not hold it; expected the "
                                   "index written with the shards")
    return list(shards.values())


def tensor_shapes(files: Sequence[Path]) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor in the weight files, read from their headers only (no tensor is loaded)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as weights:
                for name in weights.keys():  # noqa: SIM118 (safe_open is not iterable)
                    shapes[name] = tuple(weights.get_slice(name).get_shape())
        except (SafetensorError, OSError, ValueError) as error:
            raise SubjectLoadError(f"{path} is not an intact safetensors file ({_one_line(error)}); expected "
                                   "weights written by save_pretrained") from None
    return shapes


def check_weights_fit_config(directory: Path, config: Any, build: Callable[[Any], torch.nn.Module],
                             files: Sequence[Path]) -> None:
    """Refuse a config beyond the size limits, and weights whose shapes differ from those the config implies.

    ``build(config)`` makes the model class that will load the weights; it runs on the meta device, which records
    shapes without allocating memory. Checkpoint names may lack or carry the base-model prefix, as
    transformers accepts both."""
    problem = config_size_problem(config)
    if problem:
        raise SubjectLoadError(f"{directory}/config.json describes a model that is refused: {problem}")
    try:
        with torch.device("meta"):
            model = build(config)
    except (RuntimeError, ValueError, TypeError, AttributeError) as error:
        raise SubjectLoadError(f"{directory}/config.json does not describe a model that can be built "
                               f"({_one_line(error)}); expected the config saved with the weights") from None
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    prefix = str(getattr(model, "base_model_prefix", "") or "")
    for name, shape in sorted(tensor_shapes(files).items()):
        wanted = _matching_shape(expected, name, prefix)
        if wanted is not None and wanted != shape:
            raise SubjectLoadError(
                f"{directory}: tensor {name} has shape {list(shape)} in the weights but config.json implies "
                f"{list(wanted)}; expected weights and config saved together"
            )


def _matching_shape(expected: dict[str, tuple[int, ...]], name: str, prefix: str) -> tuple[int, ...] | None:
    for candidate in (name, f"{prefix}.{name}", name.removeprefix(f"{prefix}.")):
        if candidate in expected:
            return expected[candidate]
    return None


def load_config(directory: Path, **overrides: Any) -> Any:
    """The folder's ``config.json`` as a transformers config (``overrides`` replace fields); never remote code."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(directory, trust_remote_code=False, **overrides)
    except Exception as error:  # transformers and huggingface_hub raise many kinds of error for a bad file
        raise SubjectLoadError(f"cannot read the config of {directory}: {_one_line(error)}") from error


def load_tokenizer(directory: Path) -> Any:
    """The fast tokenizer saved in the folder (character offsets need one); never remote code."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    except (ValueError, OSError, KeyError, TypeError, RecursionError) as error:
        raise SubjectLoadError(f"cannot load the tokenizer saved in {directory}: {_one_line(error)}") from error
    if not getattr(tokenizer, "is_fast", False):
        raise SubjectLoadError(f"the tokenizer in {directory} is not a fast tokenizer; character offsets need one")
    return tokenizer


def read_json_record(path: Path, what: str) -> dict[str, Any]:
    """A JSON object saved beside a model (finetune.json, an index, …); damage is a one-line error."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise SubjectLoadError(f"{path} ({what}) cannot be read as JSON ({_one_line(error)}); expected the file "
                               "as written with the model") from None
    if not isinstance(record, dict):
        raise SubjectLoadError(f"{path} ({what}) holds a JSON {type(record).__name__}; expected a JSON object")
    return record


def _one_line(error: BaseException, limit: int = 300) -> str:
    """The error's text on one line (some libraries put the cause on the second line), cut to ``limit``."""
    text = " ".join(str(error).split())
    if not text:
        return type(error).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"
