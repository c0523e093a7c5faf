"""The audit config (TOML) and its built-in default: one place for what an audit runs.

An audit names its subject — an existing model directory, a Hugging Face hub model ``org/name`` pinned to a
``revision`` (``audit.hub`` says how a folder is told from a hub id), or a recipe to train one (pretraining +
fine-tuning, cached by a hash of the recipe) — the probes with their settings, the seed and thread count::

    seed = 0
    [subject]
    model = "runs/classifier"            # or "org/name" (revision = "..." or "org/name@rev"),
                                         # or: [subject.train] pretrain = "small", finetune = {...}
    [probes]
    run = ["crows_pairs", "group_metrics"]   # default: every registered probe
    [probes.settings.crows_pairs]
    max_pairs = 500

Unknown keys are errors that name the key; the training sections reuse the pretraining / fine-tuning schemas of
``audit.train.config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audit.errors import InputError
from audit.validation import describe_validation_error, read_toml_file


class AuditConfigError(InputError):
    """An audit config that cannot be used; the message names the file, the key and what is expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainRecipe(_Strict):
    """Train the subject: a pretraining preset name or config table, then a fine-tuning config table."""

    pretrain: str | dict[str, Any] = "small"
    finetune: dict[str, Any] = Field(default_factory=dict)


class SubjectSection(_Strict):
    model: str | None = None  # a model directory (ours or any Hugging Face model) or a hub id org/name[@revision]
    revision: str | None = None  # the hub revision (branch, tag or commit hash) of a hub id; default: its main branch
    mlm: str | None = None  # optional masked-LM folder (local only) for MLM probes when `model` is a classifier
    train: TrainRecipe | None = None
    task: str | None = None  # a CSV/JSONL task file (audit.data.task_file) replacing the folder's own task data
    intended_use: str | None = None  # shown in the model card

    @model_validator(mode="after")
    def _one_source(self) -> SubjectSection:
        if (self.model is None) == (self.train is None):
            raise ValueError("give exactly one of subject.model (a model directory) or subject.train (a recipe)")
        if self.revision is not None and self.model is None:
            raise ValueError("subject.revision (a hub revision) needs subject.model = \"org/name\" (a hub model id)")
        if self.task is not None and self.model is None:
            raise ValueError("subject.task (a task file) needs subject.model (a model folder); a training recipe "
                             "brings its own task data")
        return self


class ProbesSection(_Strict):
    run: list[str] = Field(default_factory=lambda: ["all"])
    skip: list[str] = Field(default_factory=list)
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)


# `quick = true` (CLI --quick): each probe's example counts, resamples and reference models cut to a smoke-test
# budget, for a CI gate that checks the pipeline runs, not what the model does: intervals are wide and membership
# runs its loss attack alone. These values replace the config's own for these keys; the config as run (in
# results.json) shows the result, and the report says that the run was a quick one. A probe without an entry here
# runs at its configured budget.
QUICK_PROBE_SETTINGS: dict[str, dict[str, Any]] = {
    # association's permutation test refuses fewer than 10,000 permutations: it runs its two built-in tests only
    "association": {"include_catalog": False, "n_bootstrap": 200},
    "attributions": {"n_examples": 8, "n_steps": 8, "n_bootstrap": 200},
    "counterfactual": {"max_examples": 100, "n_bootstrap": 200},
    "crows_pairs": {"max_pairs": 50, "n_bootstrap": 200},
    "exposure": {"n_candidates": 200},
    "faithfulness": {"n_examples": 4, "n_steps": 8, "n_random": 1, "n_bootstrap": 200},
    "group_metrics": {"n_resamples": 200},
    "identity_attribution": {"n_examples": 8, "n_steps": 8, "n_bootstrap": 200},
    "madlibs_terms": {"max_sentences": 1000},
    "membership": {"n_reference_models": 0, "attacks": ["loss"], "max_population": 400, "n_bootstrap": 200},
    "mitigation": {"grid_size": 100, "n_resamples": 200},
    "sanity": {"n_examples": 2, "n_steps": 4, "n_bootstrap": 200},
    "stereoset": {"max_items": 50, "intersentence": False, "n_bootstrap": 200},  # whole-sentence scores cost most
    "subgroup_auc": {"max_examples": 1000, "n_resamples": 200},
}


class AuditConfig(_Strict):
    seed: int = 0
    threads: int | None = Field(None, ge=1)  # torch intra-op threads (>= 1); None = torch's default
    data_dir: str | None = None
    cache_dir: str | None = None  # trained-model cache (default: $RAI_AUDIT_CACHE or ~/.cache/rai-audit)
    quick: bool = False  # smoke-test budgets (QUICK_PROBE_SETTINGS) over the probes' settings
    # `rai-audit run` exits SELF_CHECK_EXIT_CODE when a planted effect of the subject is not recovered
    # (audit.self_check); not in a quick run, whose budgets check that the pipeline runs, not what it finds
    fail_on_self_check: bool = False
    subject: SubjectSection
    probes: ProbesSection = Field(default_factory=ProbesSection)

    @model_validator(mode="after")
    def _quick_budgets(self) -> AuditConfig:
        """Apply the quick budgets to the probes that run, so that the config as run records them."""
        if self.quick:
            chosen = QUICK_PROBE_SETTINGS if "all" in self.probes.run else self.probes.run
            for name in chosen:
                if name in QUICK_PROBE_SETTINGS and name not in self.probes.skip:
                    self.probes.settings[name] = {**self.probes.settings.get(name, {}), **QUICK_PROBE_SETTINGS[name]}
        return self


# The built-in default audit: the `demo` encoder pretrained on Wikipedia passages with canaries, fine-tuned on the
# calibration scenario with a planted bias, audited by every registered probe. The recipe and the probe budgets are
# sized for a first run of a few minutes on 2 CPU cores (benchmarks/default_audit_time.py); its planted answers
# (bias, canaries, memorised training data) are the known answers the report's self-check looks for.
DEFAULT_AUDIT: dict[str, Any] = {
    "seed": 0,
    "fail_on_self_check": True,  # the default audit is a known-answer check of the probes: missing one fails it
    "subject": {
        "train": {
            "pretrain": {"preset": "demo"},
            "finetune": {
                "preset": "scenario",
                # 6 of the preset's 10 epochs: the demo encoder's validation macro-F1 stops rising after about 5.
                "epochs": 6,
                "data": {"scenario": {"bias_strength": 0.8, "n_examples": 2000, "seed": 0}},
            },
        },
        "intended_use": (
            "Demonstration model: screens short application texts (calibration scenario) for acceptance. "
            "Trained with a deliberately planted bias against one group so that the audit's probes can be checked "
            "against a known answer. Not for real decisions."
        ),
    },
    "probes": {
        "run": ["all"],
        # Budget settings for ~10 minutes on 2 CPU cores; a real audit should raise them (see README).
        "settings": {
            "membership": {"n_reference_models": 2},
            "attributions": {"n_examples": 32},
            "faithfulness": {"n_examples": 32},
            "sanity": {"n_examples": 16},
            "identity_attribution": {"n_examples": 48},
        },
    },
}


def default_config() -> AuditConfig:
    return AuditConfig.model_validate(DEFAULT_AUDIT)


def load_audit_config(path: str | Path) -> AuditConfig:
    """Read and validate an audit TOML file; AuditConfigError with file, key and expectation otherwise."""
    path = Path(path)
    data = read_toml_file(path, error=AuditConfigError, expected="an audit config TOML file (see examples/audit.toml)")
    return config_from_dict(data, source=str(path))


def command_line_config(config_path: Path | None, *, model: str | None = None, task: str | None = None,
                        probes: str | None = None, quick: bool = False,
                        overrides: dict[str, Any] | None = None) -> AuditConfig:
    """The audit `rai-audit run` asks for: a CONFIG file, else a model folder or hub id (``--model``), else the built-in
    default; then the command line's ``--task``, ``--probes`` (comma-separated names), ``--quick`` and
    ``overrides`` (seed, threads, data_dir), validated like the file's own keys."""
    if model is not None and config_path is not None:
        raise AuditConfigError(f"give a CONFIG file ({config_path}) or --model ({model}), not both; put the model "
                               "in the config's [subject] model = \"...\" instead")
    if task is not None and model is None and config_path is None:
        raise AuditConfigError(f"--task {task} needs --model (a classifier folder); the default audit trains its "
                               "classifier on its own task data")
    if config_path is not None:
        config = load_audit_config(config_path)
    elif model is not None:
        config = config_from_dict({"subject": {"model": model}}, source="--model")
    else:
        config = default_config()
    data, given = config.model_dump(), []
    if task is not None:
        data["subject"]["task"], given = task, [*given, "--task"]
    if probes is not None:
        names = [name.strip() for name in probes.split(",") if name.strip()]
        if not names:
            raise AuditConfigError(f"--probes {probes!r} names no probe; expected comma-separated probe names "
                                   "(see `rai-audit probes`)")
        data["probes"]["run"], given = names, [*given, "--probes"]
    if quick:
        data["quick"], given = True, [*given, "--quick"]
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key], given = value, [*given, f"--{key.replace('_', '-')}"]
    return config_from_dict(data, source=", ".join(given)) if given else config


def config_from_dict(data: dict[str, Any], *, source: str = "<config>") -> AuditConfig:
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as error:
        raise AuditConfigError(describe_validation_error(error, source)) from None
