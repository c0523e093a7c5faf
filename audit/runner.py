"""Run an audit: resolve the subject, run the probes with failure isolation, assemble ``AuditResults``.

Orchestration only — what each probe measures lives in ``probes``; how results look lives in ``reports``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from audit.config import AuditConfig, TrainRecipe
from audit.data.task import TASK_FILE, TaskData
from audit.data.task_file import TaskFileError, read_task_file
from audit.digests import external_file_digest, model_folder_manifest
from audit.hub import HubSnapshot, locate_model
from audit.model_folder import SubjectLoadError, read_json_record
from audit.probe_store import ProbeResultStore, file_digest_or_reason
from audit.progress import SILENT, ProgressReporter, ProgressTask, reporting_to
from audit.results import (
    AuditResults,
    DatasetRecord,
    Manifest,
    ModelFolderDigests,
    ProbeResult,
    RunInfo,
    Stage,
    StageTiming,
    json_sha256,
)
from audit.self_check import PlantedTruth, evaluate_self_check
from audit.subject import ModelUnderAudit, folder_kind_and_labels
from probes.base import Probe, ProbeContext, available_probes, derive_seed, get_probe

logger = logging.getLogger(__name__)

CANARY_MANIFEST = "canaries.json"
FINETUNE_RECORD = "finetune.json"
TRACKED_PACKAGES = ("rai-audit", "torch", "transformers", "tokenizers", "datasets", "captum", "fairlearn",
                    "numpy", "scikit-learn", "scipy", "jinja2", "pydantic", "matplotlib")


@dataclass
class ResolvedSubject:
    """The model directory to audit (for a hub model: its snapshot, also in ``hub``) and what came with it from
    training."""

    model_dir: Path
    mlm_dir: Path | None
    pretrained_dir: Path | None
    task: TaskData | None
    canary_manifest: Path | None
    finetune_record: dict[str, Any] | None
    hub: HubSnapshot | None = None

    @property
    def model(self) -> Path | HubSnapshot:
        """What the loader opens: the hub snapshot, else the folder."""
        return self.hub if self.hub is not None else self.model_dir


def default_cache_dir() -> Path:
    return Path(os.environ.get("RAI_AUDIT_CACHE", Path.home() / ".cache" / "rai-audit"))


def recipe_hash(recipe: Any) -> str:
    """A stable key for a training recipe (cache of trained models)."""
    from audit import __version__

    payload = json.dumps({"recipe": recipe, "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def training_cache_keys(pretrain_config, finetune_config) -> tuple[str, str]:
    """Cache keys of the pretrained and the fine-tuned model of a recipe.

    The precision each stage resolves to on this machine is part of the key: on "auto", bf16 and fp32 training of
    one recipe give different models, so a cache shared between CPUs must not hand one out for the other.
    """
    from audit.train.precision import resolved_precision

    hidden_size = pretrain_config.model.hidden_size
    pretrain_precision = resolved_precision(pretrain_config.train.precision, hidden_size=hidden_size)
    pretrain_key = recipe_hash({"config": pretrain_config.model_dump(mode="json"), "precision": pretrain_precision})
    finetune_precision = resolved_precision(finetune_config.precision, hidden_size=hidden_size)
    finetune_key = recipe_hash([pretrain_key, finetune_config.model_dump(mode="json"), finetune_precision])
    return pretrain_key, finetune_key


PRETRAINING_MESSAGES = {
    "masked": "pretraining the subject's encoder (masked-LM)",
    "causal": "pretraining the subject's decoder (next-token prediction)",
}


def train_subject(recipe: TrainRecipe, *, cache_dir: Path, data_dir: Path | None,
                  progress: ProgressReporter = SILENT, stages: list[StageTiming] | None = None) -> Path:
    """Pretrain and fine-tune per the recipe, reusing cached models whose recipe hash matches.

    Each stage's wall time is appended to ``stages`` (when given), marked ``reused`` for a cache hit.
    """
    from audit.train.finetune import run_finetune

    stages = [] if stages is None else stages
    pretrained_dir = ensure_pretrained(recipe, cache_dir=cache_dir, data_dir=data_dir, progress=progress,
                                       stages=stages)
    _, finetune_config = recipe_configs(recipe)
    classifier_dir = cache_dir / "models" / f"classifier-{recipe_cache_keys(recipe)[1]}"
    started = time.perf_counter()
    if (classifier_dir / "model.safetensors").is_file():
        progress(f"reusing fine-tuned classifier {classifier_dir}")
        stages.append(timed("fine-tuning", started, reused=True))
    else:
        with reporting_to(progress):
            run_finetune(finetune_config, pretrained_dir, classifier_dir, data_dir=data_dir)
        stages.append(timed("fine-tuning", started))
    return classifier_dir


def ensure_pretrained(recipe: TrainRecipe, *, cache_dir: Path, data_dir: Path | None,
                      progress: ProgressReporter = SILENT, stages: list[StageTiming] | None = None) -> Path:
    """The recipe's pretrained model: from the cache when its recipe hash is there, else pretrained now (after
    checking that the recipe's datasets are there, so a missing one fails before minutes of pretraining)."""
    from audit.train.pretrain import pretrain

    stages = [] if stages is None else stages
    pretrain_config, finetune_config = recipe_configs(recipe)
    pretrained_dir = pretrained_cache_dir(recipe, cache_dir)
    _check_datasets_before_training(pretrain_config, finetune_config, data_dir)
    started = time.perf_counter()
    if (pretrained_dir / "model.safetensors").is_file():
        progress(f"reusing pretrained model {pretrained_dir}")
        stages.append(timed("pretraining", started, reused=True))
    else:
        progress(PRETRAINING_MESSAGES[pretrain_config.train.objective])
        with reporting_to(progress):
            pretrain(pretrain_config, pretrained_dir, data_dir=data_dir)
        stages.append(timed("pretraining", started))
    return pretrained_dir


def recipe_cache_keys(recipe: TrainRecipe) -> tuple[str, str]:
    return training_cache_keys(*recipe_configs(recipe))


def pretrained_cache_dir(recipe: TrainRecipe, cache_dir: Path) -> Path:
    """Where the training cache keeps the recipe's pretrained model (there or not)."""
    return Path(cache_dir) / "models" / f"pretrained-{recipe_cache_keys(recipe)[0]}"


def recipe_configs(recipe: TrainRecipe):
    """The recipe's validated pretraining and fine-tuning configs; a bad key or value fails in one line."""
    from audit.train.config import finetune_config_from_dict, load_pretrain_config, pretrain_config_from_dict

    if isinstance(recipe.pretrain, str):
        pretrain_config = load_pretrain_config(recipe.pretrain)
    else:
        pretrain_config = pretrain_config_from_dict(recipe.pretrain, source="subject.train.pretrain")
    return pretrain_config, finetune_config_from_dict(recipe.finetune, source="subject.train.finetune")


def timed(stage: Stage, started: float, **fields: Any) -> StageTiming:
    """The timing of a stage that began at ``started`` (``time.perf_counter()``) and ends now."""
    return StageTiming(stage=stage, duration_s=round(time.perf_counter() - started, 3), **fields)


def _check_datasets_before_training(pretrain_config, finetune_config, data_dir: Path | None) -> None:
    """Fail on a missing or empty dataset before minutes of pretraining, not after."""
    from audit.data.catalog import load_dataset, resolve

    if finetune_config.data.dataset is not None:
        load_dataset(finetune_config.data.dataset, data_dir=data_dir)  # raises on missing, empty, unreadable
    resolve(pretrain_config.corpus.dataset, data_dir)


def resolve_subject(config: AuditConfig, *, progress: ProgressReporter = SILENT,
                    stages: list[StageTiming] | None = None, hub: HubSnapshot | None = None) -> ResolvedSubject:
    """The subject, trained or located. ``hub``: the snapshot ``check_subject`` fetched for this config's model,
    used as it is (so that one run asks the hub once); without it a hub model is fetched here."""
    data_dir = Path(config.data_dir) if config.data_dir else None
    if config.subject.train is not None:
        hub = None
        cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        model_dir = train_subject(config.subject.train, cache_dir=cache_dir, data_dir=data_dir, progress=progress,
                                  stages=stages)
    elif hub is not None:
        model_dir = hub.folder
    else:
        model_dir, hub = locate_model(config.subject.model, revision=config.subject.revision)
    record = None
    if (model_dir / FINETUNE_RECORD).is_file():
        record = read_json_record(model_dir / FINETUNE_RECORD, "the fine-tuning record")
    pretrained_dir = None
    if record and record.get("pretrained_from"):
        if not isinstance(record["pretrained_from"], str):
            raise SubjectLoadError(f"{model_dir / FINETUNE_RECORD} names pretrained_from "
                                   f"{record['pretrained_from']!r}; expected a folder path")
        pretrained_dir = Path(record["pretrained_from"])
        if not pretrained_dir.is_absolute():
            pretrained_dir = (model_dir / pretrained_dir).resolve()
    mlm_dir = Path(config.subject.mlm) if config.subject.mlm else None
    manifest_dir = mlm_dir or pretrained_dir or model_dir
    manifest = manifest_dir / CANARY_MANIFEST
    if config.subject.task is not None:
        task = task_from_file(config.subject.task, hub if hub is not None else model_dir)
    else:
        task = TaskData.load(model_dir) if (model_dir / TASK_FILE).is_file() else None
    return ResolvedSubject(model_dir=model_dir, mlm_dir=mlm_dir, pretrained_dir=pretrained_dir, task=task,
                           canary_manifest=manifest if manifest.is_file() else None, finetune_record=record, hub=hub)


def check_subject(config: AuditConfig) -> HubSnapshot | None:
    """A subject model folder (or hub model: fetched here), task file or training recipe that cannot be used
    fails here, in one line, before any work. Returns the hub snapshot fetched (None for a folder or recipe), for
    ``run_audit(..., hub=)``."""
    if config.subject.train is not None:
        recipe_configs(config.subject.train)
    if config.subject.model is not None:
        model_dir, hub = locate_model(config.subject.model, revision=config.subject.revision)
        model = hub if hub is not None else model_dir
        if config.subject.task is not None:
            task_from_file(config.subject.task, model)
        else:
            folder_kind_and_labels(model)
        return hub
    return None


def task_from_file(path: str | Path, model: Path | HubSnapshot) -> TaskData:
    """The task file's examples labelled with the classifier's classes (see ``audit.data.task_file``)."""
    kind, label_names = folder_kind_and_labels(model)
    model_dir, _ = locate_model(model)
    if kind != "classifier":
        raise TaskFileError(f"--task {path} needs a classifier; {model_dir} holds a {kind} model (no labels to "
                            "compare with the task's)")
    return read_task_file(path, label_names=label_names, positive_label=_recorded_positive_label(model_dir))


def _recorded_positive_label(model_dir: Path) -> int | None:
    """The positive label the model's own task data names (``task.json`` written at fine-tuning), if any."""
    if not (model_dir / TASK_FILE).is_file():
        return None
    positive = read_json_record(model_dir / TASK_FILE, "the fine-tuning task record").get("positive_label")
    return positive if isinstance(positive, int) and not isinstance(positive, bool) else None


def select_probes(config: AuditConfig) -> list[Probe]:
    """Instantiate the configured probes; unknown names and bad settings fail before anything runs."""
    names = list(available_probes()) if "all" in config.probes.run else list(config.probes.run)
    for name in [*names, *config.probes.skip, *config.probes.settings]:
        get_probe(name)  # raises UnknownProbeError with a "did you mean"
    chosen = [name for name in names if name not in set(config.probes.skip)]
    return [get_probe(name)(config.probes.settings.get(name)) for name in chosen]


def run_audit(config: AuditConfig, *, progress: ProgressReporter = SILENT, command: str = "",
              resume_from: Path | None = None, fresh: bool = False, hub: HubSnapshot | None = None) -> AuditResults:
    """Run every selected probe on the subject and return the results.

    With ``resume_from`` (the output folder) each finished probe's result is stored there as it finishes and a
    result stored by an interrupted run under the same key is reused instead of run again (``audit.probe_store``);
    ``fresh`` clears what was stored first. ``hub``: the snapshot ``check_subject(config)`` returned, so that
    the hub is not asked twice. Nothing else is written here. ``progress`` hears of every stage (and,
    as the ``current_reporter()`` meanwhile, of training steps and scoring passes inside them); the wall time of
    each stage is recorded in ``run.stages``.
    """
    probes = select_probes(config)
    n_stages = len(probes) + 1 + (2 if config.subject.train is not None else 0)  # (training,) loading, probes
    with reporting_to(progress), progress.task("audit", total=n_stages, unit="stages", eta=False) as whole:
        return _run(config, probes, progress=progress, whole=whole, command=command, resume_from=resume_from,
                    fresh=fresh, hub=hub)


def _run(config: AuditConfig, probes: list[Probe], *, progress: ProgressReporter, whole: ProgressTask,
         command: str, resume_from: Path | None, fresh: bool, hub: HubSnapshot | None) -> AuditResults:
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    stages: list[StageTiming] = []
    resolved = resolve_subject(config, progress=progress, stages=stages, hub=hub)
    whole.update(completed=len(stages))
    loading_started = time.perf_counter()
    with progress.task("loading the model"):
        subject = ModelUnderAudit.from_pretrained(resolved.model, mlm_path=resolved.mlm_dir)
        # Hashed once: the manifest of results.json and the key of stored probe results both use these digests.
        model_digests = model_folder_manifest(_model_folders(subject, resolved))
    stages.append(timed("loading", loading_started))
    whole.advance()
    data_dir = Path(config.data_dir) if config.data_dir else None

    results: list[ProbeResult] = []
    datasets: dict[str, DatasetRecord] = {}
    dataset_files: dict[Path, str] = {}
    for record in (resolved.task.provenance if resolved.task else []):
        try:
            dataset = DatasetRecord.model_validate(record)
            datasets[dataset.sha256 + dataset.name] = dataset
        except ValueError:
            logger.warning("ignoring malformed provenance record %r", record)
    if config.subject.task is not None and resolved.task is not None:  # digested for `rai-audit verify`
        dataset_files[Path(config.subject.task).expanduser().resolve()] = resolved.task.provenance[0]["name"]
    store = (_open_probe_store(config, resolved, subject, model_digests, resume_from, fresh=fresh)
             if resume_from else None)
    for number, probe in enumerate(probes, start=1):
        probe_started = time.perf_counter()
        seed = derive_seed(config.seed, probe.name)
        stored, not_reused = store.load(probe, seed) if store is not None else (None, "")
        if stored is not None:
            progress(f"probe {probe.name}: reused the result stored before an interruption")
            results.append(stored.result)
            datasets.update((record.sha256 + record.name, record) for record in stored.datasets)
            for path, name in stored.dataset_files.items():
                dataset_files.setdefault(path, name)
            stages.append(timed("probe", probe_started, probe=probe.name, reused=True))
            whole.advance()
            continue
        if not_reused:
            progress(f"probe {probe.name}: stored result not reused: {not_reused}")
        context = ProbeContext(
            subject=subject,
            seed=seed,
            task=resolved.task,
            canary_manifest=resolved.canary_manifest,
            pretrained_dir=resolved.pretrained_dir,
            finetune_recipe=(resolved.finetune_record or {}).get("recipe"),
            data_dir=data_dir,
            progress=progress,
        )
        with progress.task(f"probe {number}/{len(probes)} {probe.name}") as shown:
            results.append(probe.execute(context))
            shown.update(info=_probe_status(results[-1]))
        stages.append(timed("probe", probe_started, probe=probe.name))
        whole.advance()
        for record in context.datasets_used:
            datasets[record.sha256 + record.name] = record
        if store is not None:
            store.save(probe, seed, results[-1], datasets=context.datasets_used, dataset_files=context.dataset_files)
        for path, name in context.dataset_files.items():
            dataset_files.setdefault(path, name)

    subject_info = subject.info()
    subject_info.model_card.update(_model_card_extras(config, resolved))
    config_as_run = config.model_dump(mode="json")
    self_check = evaluate_self_check(results, planted_truth(resolved),
                                     enforced=config.fail_on_self_check and not config.quick)
    return AuditResults(
        run=RunInfo(
            id=_run_id(config_as_run, subject_info.sha256),
            started=started_at.isoformat(timespec="seconds"),
            duration_s=round(time.perf_counter() - started, 3),
            seed=config.seed,
            threads=torch.get_num_threads(),
            package_versions=_package_versions(),
            git_sha=_git_sha(),
            hardware=_hardware(),
            command=command,
            stages=stages,
        ),
        subject=subject_info,
        datasets=sorted(datasets.values(), key=lambda record: record.name),
        config=config_as_run,
        probes=results,
        self_check=self_check,
        manifest=_manifest(config_as_run, model_digests, dataset_files),
    )


def planted_truth(resolved: ResolvedSubject) -> PlantedTruth:
    """What the subject carries as known answers: the calibration scenario's planted bias (task.json) and the
    repeat counts of the canaries in its pretraining text (canaries.json)."""
    from audit.train.canaries import CanaryManifestError, load_manifest

    repeats: tuple[int, ...] = ()
    if resolved.canary_manifest is not None:
        try:
            repeats = tuple(load_manifest(resolved.canary_manifest.parent).by_repeats())
        except CanaryManifestError as error:  # the exposure probe reports it; the self-check cannot use it
            logger.warning("self-check: canary manifest not used: %s", error)
    scenario = resolved.task.planted if resolved.task is not None else None
    return PlantedTruth(scenario=scenario or None, canary_repeats=repeats)


def _probe_status(result: ProbeResult) -> str:
    """What the progress display says of a finished probe: nothing when it ran, else its status and why."""
    if result.status == "ok":
        return ""
    reason = result.message.splitlines()[0] if result.message.strip() else ""
    return f"{result.status}: {reason}" if reason else result.status


def _model_folders(subject: ModelUnderAudit, resolved: ResolvedSubject) -> list[tuple[Path, str]]:
    """(folder, role) of every model folder the audit reads: the subject, its masked or causal LM, its pretrained
    encoder."""
    folders = [(subject.path, "subject")]
    if subject.mlm_path is not None:
        folders.append((subject.mlm_path, "mlm"))
    if subject.causal_lm_path is not None:
        folders.append((subject.causal_lm_path, "causal-lm"))
    if resolved.pretrained_dir is not None and resolved.pretrained_dir.is_dir():
        folders.append((resolved.pretrained_dir, "pretrained"))
    return folders


def _manifest(config_as_run: dict[str, Any], model_digests: list[ModelFolderDigests],
              dataset_files: dict[Path, str]) -> Manifest:
    """Digests of every model folder and dataset file the audit read and of the config (see audit.verify)."""
    return Manifest(
        config_sha256=json_sha256(json.loads(json.dumps(config_as_run))),  # as a reader parses it back
        models=model_digests,
        dataset_files=[external_file_digest(path, dataset=name) for path, name in sorted(dataset_files.items())],
    )


def _open_probe_store(config: AuditConfig, resolved: ResolvedSubject, subject: ModelUnderAudit,
                      model_digests: list[ModelFolderDigests], out_dir: Path, *, fresh: bool) -> ProbeResultStore:
    """The output folder's store of finished probes, keyed by everything besides a probe's own settings and seed
    that its result depends on (model folders, canaries, task file, data directory, threads, device, software,
    hardware)."""
    from audit.data.catalog import data_dir_from_env

    data_dir = data_dir_from_env(config.data_dir)
    identity = {
        "models": [entry.model_dump(mode="json") for entry in model_digests],
        "canary_manifest": (file_digest_or_reason(resolved.canary_manifest)
                            if resolved.canary_manifest is not None else None),
        "data_dir": str(data_dir.resolve()) if data_dir else None,
        "task_file": (file_digest_or_reason(Path(config.subject.task).expanduser())
                      if config.subject.task is not None else None),
        "threads": torch.get_num_threads(),
        "device": str(subject.device),
        "packages": _package_versions(),
        "git_sha": _git_sha(),
        "hardware": _hardware(),
    }
    store = ProbeResultStore(out_dir, identity=identity)
    if fresh:
        store.clear()
    return store


def _model_card_extras(config: AuditConfig, resolved: ResolvedSubject) -> dict[str, Any]:
    card: dict[str, Any] = {}
    if config.subject.intended_use:
        card["intended_use"] = config.subject.intended_use
    if resolved.task is not None:
        counts = {split: len(resolved.task.split(split)) for split in ("train", "validation", "test")}
        text = (f"{resolved.task.name}: labels {', '.join(resolved.task.label_names)}; "
                f"{counts['train']} training, {counts['validation']} validation, {counts['test']} test examples")
        planted = resolved.task.planted
        if planted:  # the headline of the planted truth; the full record (flipped ids …) stays in task.json
            text += (f"; planted bias: {planted.get('flip_rate')} of the {planted.get('disadvantaged_group')} group's "
                     f"positive training labels flipped ({planted.get('n_flipped')} examples, "
                     f"column {planted.get('group_column')!r})")
        card["training_data"] = text
    precision = _training_precision(resolved)
    if precision:
        card["training_precision"] = precision
    if resolved.finetune_record:
        metrics = resolved.finetune_record.get("metrics", {}).get("test", {})
        card["metrics"] = {f"test {key}": value for key, value in metrics.items() if isinstance(value, (int, float))}
    return card


def _training_precision(resolved: ResolvedSubject) -> str:
    """E.g. "pretraining fp32, fine-tuning bf16", from the records our training writes beside each model."""
    from audit.train.pretrain import RECIPE_FILE as PRETRAIN_RECORD

    stages = []
    pretrain_record = (resolved.pretrained_dir or resolved.mlm_dir or resolved.model_dir) / PRETRAIN_RECORD
    if pretrain_record.is_file():
        try:
            precision = json.loads(pretrain_record.read_text(encoding="utf-8")).get("precision")
        except (OSError, ValueError):
            precision = None
        if isinstance(precision, str):
            stages.append(f"pretraining {precision}")
    precision = (resolved.finetune_record or {}).get("precision")
    if isinstance(precision, str):
        stages.append(f"fine-tuning {precision}")
    return ", ".join(stages)


def _run_id(config_as_run: dict[str, Any], weights_sha: str) -> str:
    """Deterministic: the same config and weights give the same id (results.json must be reproducible)."""
    payload = json.dumps({"config": config_as_run, "weights": weights_sha}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _git_sha() -> str | None:
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                   text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def _hardware() -> dict[str, str]:
    from audit.train.precision import cpu_has_bf16_units, cpu_model_name, cpu_vector_isa

    hardware = {"platform": platform.platform(), "processor": platform.machine(), "cpus": str(os.cpu_count()),
                "cpu_model": cpu_model_name(), "vector_isa": cpu_vector_isa(),
                "bf16_units": "yes" if cpu_has_bf16_units() else "no"}
    if torch.cuda.is_available():
        hardware["gpu"] = torch.cuda.get_device_name(0)
    return hardware
