"""The sweep file (TOML): subjects — model folders, hub ids, or training recipes under several seeds — audited
with one probe configuration, and what the leaderboard compares::

    seed = 0                              # the audit seed of every cell (probe randomness)
    [probes]                              # as in an audit config
    run = ["group_metrics"]
    [resources]                           # per cell, for Ray's scheduler; threads = num_cpus unless given
    num_cpus = 1
    [leaderboard]
    baseline = "control"                  # a subject's name (a recipe: its first seed's cell)
    metrics = ["group_metrics.selection_rate_gap"]   # probe.metric (every group of it); default: see leaderboard
    [[subjects]]
    name = "control"
    train = { pretrain = "small", finetune = { preset = "scenario" } }
    seeds = [0, 1, 2]                     # one cell per seed: the fine-tuning seed (and pretraining's, if asked)
    [[subjects]]
    name = "someone-elses"
    model = "runs/classifier"             # a folder, or a hub id passed through to the audit config

Every cell is an ordinary audit config (``audit.config.AuditConfig``), validated here before any work, so a bad
key, probe or setting fails in one line naming the sweep file.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audit.config import AuditConfig, AuditConfigError, ProbesSection, TrainRecipe, config_from_dict
from audit.errors import InputError
from audit.validation import describe_validation_error, read_toml_file

if TYPE_CHECKING:
    from probes.base import Probe


class SweepSpecError(InputError):
    """A sweep file that cannot be used; the message names the file, the key and what is expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SweepSubject(_Strict):
    """One row of the grid: a model (folder or hub id) audited once, or a recipe trained and audited per seed."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
    model: str | None = None
    mlm: str | None = None
    task: str | None = None
    train: TrainRecipe | None = None
    seeds: list[int] | None = Field(None, min_length=1)
    # Which training stages a seed sets: fine-tuning alone (the classifier's initialisation and data order), or
    # pretraining too (MultiBERTs-style seed variance, Sellam et al., ICLR 2022), at the cost of one pretraining
    # per seed.
    seed_stages: list[Literal["pretrain", "finetune"]] = Field(default_factory=lambda: ["finetune"], min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> SweepSubject:
        if (self.model is None) == (self.train is None):
            raise ValueError("give exactly one of model (a folder or hub id) or train (a recipe)")
        if self.seeds is not None and self.train is None:
            raise ValueError("seeds need train (a recipe to train under each seed); a model is audited once")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeat a seed; expected distinct seeds")
        return self


class Resources(_Strict):
    """What one cell asks of Ray's scheduler."""

    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)


class LeaderboardSection(_Strict):
    baseline: str | None = None  # default: the first subject
    metrics: list[str] | None = None  # "probe.metric"; default: every probe's headline metrics
    n_bootstrap: int = Field(2000, ge=100)


class SweepSpec(_Strict):
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    data_dir: str | None = None
    cache_dir: str | None = None
    quick: bool = False
    probes: ProbesSection = Field(default_factory=ProbesSection)
    resources: Resources = Field(default_factory=Resources)
    leaderboard: LeaderboardSection = Field(default_factory=LeaderboardSection)
    subjects: list[SweepSubject] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> SweepSpec:
        names = [subject.name for subject in self.subjects]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"subject names must be unique; {', '.join(repeated)} repeats")
        if self.leaderboard.baseline is not None and self.leaderboard.baseline not in names:
            raise ValueError(f"leaderboard.baseline {self.leaderboard.baseline!r} is not a subject; expected one of "
                             f"{', '.join(names)}")
        for entry in self.leaderboard.metrics or []:
            if entry.count(".") < 1 or not all(entry.split(".", 1)):
                raise ValueError(f"leaderboard.metrics entry {entry!r}: expected probe.metric, e.g. "
                                 "group_metrics.selection_rate_gap")
        return self

    @property
    def baseline(self) -> str:
        return self.leaderboard.baseline or self.subjects[0].name


def check_leaderboard_metrics(spec: SweepSpec, probes: Sequence[Probe], *, source: str) -> None:
    """Each ``[leaderboard] metrics`` entry must name a probe the sweep runs (``probes``, as configured) and a
    metric that probe declares; a name that matched nothing would be dropped from the leaderboard after all the
    work. A probe that declares no metrics (a plug-in) cannot be checked before it runs."""
    selected = {probe.name: probe for probe in probes}
    for entry in spec.leaderboard.metrics or []:
        probe_name, metric = entry.split(".", 1)
        probe = selected.get(probe_name)
        if probe is None:
            raise SweepSpecError(f"{source}: leaderboard.metrics entry {entry!r} names probe {probe_name!r}, which "
                                 f"the sweep does not run; expected one of probes.run: {', '.join(selected)}")
        declared = probe.declared_metrics()
        if declared is not None and metric not in declared:
            raise SweepSpecError(f"{source}: leaderboard.metrics entry {entry!r}: probe {probe_name!r} declares no "
                                 f"metric {metric!r}; its metrics: {', '.join(declared)}")


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; SweepSpecError with file, key and expectation otherwise."""
    path = Path(path)
    data = read_toml_file(path, error=SweepSpecError, expected="a sweep TOML file (see examples/sweep.toml)")
    return sweep_spec_from_dict(data, source=str(path))


def sweep_spec_from_dict(data: dict[str, Any], *, source: str = "<sweep>") -> SweepSpec:
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as error:
        raise SweepSpecError(describe_validation_error(error, source)) from None


def seeded_recipe(recipe: TrainRecipe, seed: int, stages: list[str]) -> dict[str, Any]:
    """The recipe with ``seed`` as the fine-tuning seed (and the pretraining seed when asked)."""
    data = copy.deepcopy(recipe.model_dump(mode="json"))
    if "finetune" in stages:
        data["finetune"]["seed"] = seed
    if "pretrain" in stages:
        pretrain = data["pretrain"] if isinstance(data["pretrain"], dict) else {"preset": data["pretrain"]}
        pretrain.setdefault("train", {})["seed"] = seed
        data["pretrain"] = pretrain
    return data


def cell_config(spec: SweepSpec, subject: SweepSubject, seed: int | None, *, source: str) -> AuditConfig:
    """The audit config of one cell, validated like an audit file's (unknown probes fail later, in select_probes)."""
    section: dict[str, Any] = {"model": subject.model, "mlm": subject.mlm, "task": subject.task}
    if subject.train is not None:
        section = {"train": (seeded_recipe(subject.train, seed, subject.seed_stages) if seed is not None
                             else subject.train.model_dump(mode="json"))}
    threads = spec.threads or max(1, int(spec.resources.num_cpus))
    data = {"seed": spec.seed, "threads": threads, "data_dir": spec.data_dir, "cache_dir": spec.cache_dir,
            "quick": spec.quick, "subject": {k: v for k, v in section.items() if v is not None},
            "probes": spec.probes.model_dump(mode="json")}
    name = subject.name if seed is None else f"{subject.name} (seed {seed})"
    try:
        return config_from_dict(data, source=f"{source}: subject {name}")
    except AuditConfigError as error:
        raise SweepSpecError(str(error)) from None
