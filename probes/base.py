"""The probe contract and registry; third-party probes implement it (README, "Writing a probe plug-in").

A probe is a small class that declares what it measures and what it needs from the model under audit, and turns a
``ProbeContext`` into a ``ProbeResult``. Probes never print, never write files and never seed global RNGs: all
randomness comes from ``ctx.rng`` / ``ctx.seed`` so that the same config and seed give the same results.

Built-in probes register themselves with ``@register``; third-party probes are found through the entry-point group
``rai_audit.probes`` (each entry point names a Probe subclass).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit.errors import InputError
from audit.progress import ProgressReporter, current_reporter
from audit.results import DatasetRecord, Family, ProbeResult

if TYPE_CHECKING:  # imported only for type hints, to keep `import probes` light
    from audit.data.task import TaskData
    from audit.subject import ModelUnderAudit

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "rai_audit.probes"

# What a probe may need from the subject: one capability, or LANGUAGE_MODEL for a probe that scores text
# with either kind of language model (masked: pseudo-log-likelihood; causal: log-likelihood).
SUBJECT_CAPABILITIES = ("mlm", "causal-lm", "classifier", "embeddings")
LANGUAGE_MODEL = "language-model"

# A probe's metric declarations: metric name -> the groups it is written with. A frozenset lists them (None
# in it: written without a group); FROM_DATA means the groups come from the data (bias types, group columns),
# so any group is accepted before the run.
Groups = frozenset[str | None] | None
MetricDeclarations = Mapping[str, Groups]
FROM_DATA: Groups = None
NO_GROUP: Groups = frozenset({None})


def declare(declarations: Mapping[str, Groups]) -> MetricDeclarations:
    """A probe's ``metrics`` class attribute: a read-only copy, so nothing changes what a class declares."""
    return MappingProxyType(dict(declarations))


# Tests set this so that every probe run checks its metrics against its declarations (see Probe.execute).
CHECK_DECLARATIONS_ENV = "RAI_AUDIT_CHECK_DECLARATIONS"


class ProbeConfig(BaseModel):
    """Base for every probe's settings; unknown keys are errors that name the key."""

    model_config = ConfigDict(extra="forbid")


# Setting types with their allowed ranges, so that a bad value fails with the config, before any work, naming
# the probe, the setting and the range (Probe.__init__), instead of deep inside a probe.
Count = Annotated[int, Field(ge=1)]  # sizes and limits: batch_size, max_items, n_permutations, ...
ShownCount = Annotated[int, Field(ge=0)]  # how many examples to show in the report (0: none)
BootstrapResamples = Annotated[int, Field(ge=10)]  # fewer cannot give a percentile interval
Confidence = Annotated[float, Field(gt=0.0, lt=1.0)]  # the intervals' confidence level
LabelIndex = Annotated[int, Field(ge=0)]


class ProbeSkipped(Exception):
    """Raised inside ``run`` when the probe cannot run on this subject or data; recorded as status "skipped"."""


class ProbeInputError(InputError):
    """Bad input to a probe (a missing column, a malformed file): the message says what is wrong and what is expected."""


class UndeclaredMetricError(AssertionError):
    """A probe wrote a metric (or a group of it) that its declarations do not list: a bug in the probe."""


@dataclass
class ProbeContext:
    """Everything a probe may use. One context is made per probe, with its own seed stream.

    subject:        the model under audit (capabilities: mlm / classifier / embeddings).
    seed:           the probe's seed, derived from the run seed and the probe name.
    task:           the fine-tuning data with split membership, labels and groups (classifier probes).
    canary_manifest: path of the canary manifest written at pretraining (privacy exposure).
    pretrained_dir: the masked-LM checkpoint the classifier was fine-tuned from (shadow models).
    finetune_recipe: the fine-tuning settings used for the classifier (to train reference models the same way).
    data_dir:       the data directory setting (``--data-dir`` / RAI_AUDIT_DATA_DIR), for the data catalog.
    progress:       where to say how far the probe has got (``audit.progress``): ``ctx.progress("…")`` for a
                    step, ``with ctx.progress.task("…", total=n) as task: … task.advance()`` for a long loop.
                    Silent unless the caller set one; the CLI renders it.
    """

    subject: ModelUnderAudit | None
    seed: int
    task: TaskData | None = None
    canary_manifest: Path | None = None
    pretrained_dir: Path | None = None
    finetune_recipe: dict[str, Any] | None = None
    data_dir: Path | None = None
    progress: ProgressReporter = field(default_factory=current_reporter)
    datasets_used: list[DatasetRecord] = field(default_factory=list)
    # Local files each loaded dataset was read from (path -> dataset name): results.json's manifest lists their
    # digests, and a stored probe result (audit.probe_store) is reused only while they are unchanged.
    dataset_files: dict[Path, str] = field(default_factory=dict)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def load_dataset(self, name: str, **options: Any):
        """Load a named dataset (or a path) through the data catalog and record its provenance for the report."""
        from audit.data.catalog import load_dataset

        loaded = load_dataset(name, data_dir=self.data_dir, **options)
        if all(record.sha256 != loaded.record.sha256 for record in self.datasets_used):
            self.datasets_used.append(loaded.record)
        for path in loaded.files.values():
            self.dataset_files.setdefault(Path(path), loaded.record.name)
        return loaded

    def torch_generator(self):
        import torch

        return torch.Generator().manual_seed(self.seed)


def derive_seed(run_seed: int, *names: str) -> int:
    """A stable per-probe seed: a hash of the run seed and the names (not Python's salted hash())."""
    digest = hashlib.sha256(":".join([str(run_seed), *names]).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class Probe:
    """Base class. Subclasses set the class attributes and implement ``run``.

    name:        registry key, snake_case.
    version:     bump when results change meaning.
    family:      bias | fairness | privacy | attribution.
    citation:    the paper whose method the probe implements.
    description: one line for ``rai-audit probes``.
    needs:       subject capabilities (``SUBJECT_CAPABILITIES`` or ``LANGUAGE_MODEL``) / context items required;
                 a missing one skips the probe with the reason.
    how_to_read: plain-language guidance shown in the report.
    Config:      a ProbeConfig subclass with the settings and their defaults.
    metrics:     every metric the probe can write under any config, with its groups (see ``Groups``);
                 policy rules are checked against it before an audit starts. None: undeclared (rules are
                 checked after the run). A probe whose names or groups follow its config narrows them in
                 ``declared_metrics``.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    family: ClassVar[Family]
    citation: ClassVar[str]
    description: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    how_to_read: ClassVar[str] = ""
    Config: ClassVar[type[ProbeConfig]] = ProbeConfig
    metrics: ClassVar[MetricDeclarations | None] = None

    def __init__(self, config: ProbeConfig | dict[str, Any] | None = None) -> None:
        if isinstance(config, ProbeConfig):
            self.config = config
        else:
            try:
                self.config = self.Config.model_validate(config or {})
            except ValidationError as error:
                problem = error.errors()[0]
                location = ".".join(str(part) for part in problem["loc"])
                raise ProbeInputError(
                    f"probe {self.name!r}: setting {location!r}: {problem['msg']}"
                    f" (valid settings: {', '.join(self.Config.model_fields) or 'none'})"
                ) from None

    def declared_metrics(self) -> MetricDeclarations | None:
        """The metrics this probe, with its config, can write (None when the probe declares none)."""
        return self.metrics

    def undeclared_metrics(self, result: ProbeResult) -> list[str]:
        """The metrics of ``result`` that the declarations do not cover, as "name [group]"."""
        declared = self.declared_metrics()
        if declared is None:
            return []
        return [f"{metric.name} [{metric.group}]" for metric in result.metrics
                if metric.name not in declared
                or (declared[metric.name] is not FROM_DATA and metric.group not in declared[metric.name])]

    def missing_needs(self, ctx: ProbeContext) -> list[str]:
        """The needs this context cannot meet, each as a reason a reviewer can read."""
        missing = []
        capabilities = set(ctx.subject.capabilities) if ctx.subject is not None else set()
        for need in sorted(self.needs):
            if need in SUBJECT_CAPABILITIES and need not in capabilities:
                missing.append(f"the model has no {need} capability")
            elif need == LANGUAGE_MODEL and not capabilities & {"mlm", "causal-lm"}:
                missing.append("the model is neither a masked nor a causal language model")
            elif need == "task" and ctx.task is None:
                missing.append("no fine-tuning data with split membership was given")
            elif need == "canaries" and ctx.canary_manifest is None:
                missing.append("no canary manifest was found beside the pretrained model")
            elif need == "pretrained" and ctx.pretrained_dir is None:
                missing.append("the pretrained checkpoint the classifier came from is unknown")
        return missing

    def new_result(self, **fields: Any) -> ProbeResult:
        """A ProbeResult pre-filled with this probe's identity and config."""
        return ProbeResult(
            probe=self.name,
            version=self.version,
            family=self.family,
            citation=self.citation,
            config=self.config.model_dump(mode="json"),
            description=self.description,
            how_to_read=self.how_to_read,
            **fields,
        )

    def run(self, ctx: ProbeContext) -> ProbeResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def execute(self, ctx: ProbeContext) -> ProbeResult:
        """Run with failure isolation: skipped when needs are missing, status "error" when the probe raises."""
        started = time.perf_counter()
        missing = self.missing_needs(ctx)
        if missing:
            result = self.new_result(status="skipped", message="; ".join(missing))
        else:
            try:
                result = self.run(ctx)
            except ProbeSkipped as reason:
                result = self.new_result(status="skipped", message=str(reason))
            except Exception as error:  # isolate: one failing probe must not stop the audit
                logger.exception("probe %s failed", self.name)
                result = self.new_result(status="error", message=_error_message(error))
        result.duration_s = round(time.perf_counter() - started, 3)
        result.datasets = sorted({record.name for record in ctx.datasets_used} | set(result.datasets))
        self._check_declarations(result)
        return result

    def _check_declarations(self, result: ProbeResult) -> None:
        undeclared = self.undeclared_metrics(result)
        if not undeclared:
            return
        message = f"probe {self.name!r} wrote undeclared metric(s): {', '.join(undeclared)}"
        if os.environ.get(CHECK_DECLARATIONS_ENV):
            raise UndeclaredMetricError(message)
        logger.warning("%s; policy rules naming them are checked only after the run", message)


def _error_message(error: Exception) -> str:
    """One line for a failed probe; a result the probe could not build (e.g. a NaN metric) names the problem."""
    if isinstance(error, ValidationError):
        return f"invalid result: {error.errors()[0]['msg'].removeprefix('Value error, ')}"
    return f"{type(error).__name__}: {error}"


_REGISTRY: dict[str, type[Probe]] = {}
_entry_points_loaded = False


class UnknownProbeError(InputError, KeyError):
    """No probe is registered under a name (a failed lookup, so a KeyError too); the message suggests the closest."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(probe_class: type[Probe]) -> type[Probe]:
    """Class decorator: add a probe to the registry under its ``name``."""
    existing = _REGISTRY.get(probe_class.name)
    if existing is not None and existing is not probe_class:
        raise ValueError(f"two probes are named {probe_class.name!r}: {existing.__module__} and {probe_class.__module__}")
    _REGISTRY[probe_class.name] = probe_class
    return probe_class


def _load_builtin_and_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    import probes.builtin  # noqa: F401  (registers the built-in probes)

    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(entry_point.load())
        except Exception as error:  # noqa: BLE001  (a plug-in's import can raise anything; a broken plug-in
            # must not break the built-ins)
            logger.warning("could not load probe plug-in %s: %s", entry_point.name, error)


def available_probes() -> dict[str, type[Probe]]:
    """Every registered probe, by name, sorted."""
    _load_builtin_and_entry_points()
    return dict(sorted(_REGISTRY.items()))


def get_probe(name: str) -> type[Probe]:
    """The probe class named ``name``; an UnknownProbeError with a "did you mean" otherwise."""
    probes = available_probes()
    if name in probes:
        return probes[name]
    close = difflib.get_close_matches(name, list(probes), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known probes: {', '.join(probes)}"
    raise UnknownProbeError(f"unknown probe {name!r}{hint}")
