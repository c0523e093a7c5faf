"""The result schema of an audit run: what `results.json` holds (a contract: tools and CI gates read it).

Everything a report, a gate or a comparison needs is here, so that `reports/` and `audit.gate` can work from a
`results.json` alone. The schema is versioned by ``SCHEMA_VERSION``; a JSON Schema export ships in
``audit/schema/results.schema.json`` and is regenerated with ``python -m audit.results``.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from audit.errors import InputError
from audit.figure_data import check_figure_data

# 1.1 added ``manifest`` and ``results_sha256`` (tamper evidence, see ``content_sha256``); both are optional so
# that 1.0 files, which lack them, still load. Every file this version writes has both.
# 1.2 added ``run.stages`` (wall time per stage); optional, so 1.0 and 1.1 files load with an empty list.
# 1.3 added, all optional so that older files load unchanged: ``subject.hub`` (repository, requested revision
# and commit of a model fetched from the hub), ``self_check`` (planted effects recovered or not, see
# audit.self_check), the finding level "inconclusive", ``Metric.inconclusive_reason`` and ``Verdict.inconclusive``.
SCHEMA_VERSION = "1.3"
READABLE_SCHEMA_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
SELF_DIGEST_FIELD = "results_sha256"

Family = Literal["bias", "fairness", "privacy", "attribution"]
ProbeStatus = Literal["ok", "error", "skipped"]
# "inconclusive": the evidence cannot decide (an interval across the acceptable band's edge, or a probe that
# cannot measure on this model). It ranks above pass, so that a probe with one undecided finding never shows as a
# pass, and below warn, which reports a likely problem.
FindingLevel = Literal["pass", "warn", "fail", "inconclusive", "info"]
FINDING_SEVERITY: dict[str, int] = {"fail": 4, "warn": 3, "inconclusive": 2, "pass": 1, "info": 0}  # worst leads
Cell = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _finite_or_none(value: float | None, info: ValidationInfo) -> float | None:
    """JSON has no NaN/inf: an undefined number must be None with a reason, never a silent NaN."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        name = info.data.get("name", "?")
        raise ValueError(f"metric {name!r} {info.field_name} is {value} (not finite): the computation gave NaN or "
                         "infinity; an undefined metric is value=None with undefined_reason")
    return value


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not math.isfinite(value)


def scrub_non_finite(value: Any, place: str, found: list[str]) -> Any:
    """``value`` with every NaN/infinity inside it (in lists and dicts, at any depth) replaced by None, in place
    where it can be; ``found`` gets the place of each replaced number."""
    if _is_non_finite(value):
        found.append(place)
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = scrub_non_finite(item, f"{place}.{key}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = scrub_non_finite(item, f"{place}[{index}]", found)
    return value


class Metric(_Strict):
    """One number with its uncertainty.

    ``higher_is_better`` True/False says which direction is better; None means "closer to ``target`` is better"
    (e.g. CrowS-Pairs, ideal 50). ``value`` None means not defined, and ``undefined_reason`` says why.
    ``inconclusive_reason``, when set, says why the probe holds the value unfit to decide on (e.g. the language
    model cannot tell meaningful text from meaningless text); a gate rule on it is inconclusive.
    """

    name: str
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    higher_is_better: bool | None = None
    target: float | None = None
    n: int | None = None
    group: str | None = None
    p_value: float | None = None
    undefined_reason: str | None = None
    inconclusive_reason: str | None = None
    description: str = ""

    _check = field_validator("value", "ci_low", "ci_high", "target", "p_value")(
        lambda cls, v, info: _finite_or_none(v, info)
    )


class Table(_Strict):
    """Rows per group / category; cells are plain values (rendered escaped)."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""


class Figure(_Strict):
    """Data for a chart, never an image: the report draws it.

    kinds and their ``data``:
      - ``bar``: {"labels": [...], "values": [...], "ci_low": [...], "ci_high": [...], "reference": float|None}
      - ``line``: {"series": [{"label": str, "x": [...], "y": [...], "ci_low"?: [...], "ci_high"?: [...]}],
        "reference"?: float}
      - ``roc``: like ``line``; x = FPR, y = TPR, drawn on log-log axes when ``log_scale`` is true.
      - ``tokens``: {"items": [{"title": str, "tokens": [str], "scores": [float]}]} — attribution heatmaps.
    """

    name: str
    title: str
    kind: Literal["bar", "line", "roc", "tokens"]
    data: dict[str, Any]
    x_label: str = ""
    y_label: str = ""
    log_scale: bool = False
    caption: str = ""

    @model_validator(mode="after")
    def _data_fits_kind(self) -> Figure:
        check_figure_data(self.kind, self.data, figure=self.name)
        return self


class Example(_Strict):
    """An illustrative item; ``fields`` are shown as text (escaped)."""

    title: str
    fields: dict[str, Cell]


class Finding(_Strict):
    """A plain-language finding for the executive summary, with a traffic light."""

    level: FindingLevel
    message: str
    metric: str | None = None


class ProbeResult(_Strict):
    """What one probe returns (contract)."""

    probe: str
    version: str
    family: Family
    citation: str
    status: ProbeStatus = "ok"
    message: str = ""
    metrics: list[Metric] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    # Per-example outcomes keyed by name (e.g. "correct", "flip", "attack_score"), aligned with "example_ids",
    # so that two runs can be compared with paired statistics.
    per_example: dict[str, list[Cell]] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    datasets: list[str] = Field(default_factory=list)
    duration_s: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    description: str = ""
    how_to_read: str = ""

    @model_validator(mode="after")
    def _no_silent_non_finite(self) -> ProbeResult:
        """NaN/infinity in tables, figures, examples or per-example values become empty values, and a warning
        says where: the numbers a probe computed were not all finite (e.g. a model with NaN weights)."""
        found: list[str] = []
        for table in self.tables:
            scrub_non_finite(table.rows, f"table {table.name!r}", found)
        for figure in self.figures:
            scrub_non_finite(figure.data, f"figure {figure.name!r}", found)
        for example in self.examples:
            scrub_non_finite(example.fields, f"example {example.title!r}", found)
        scrub_non_finite(self.per_example, "per_example", found)
        scrub_non_finite(self.config, "config", found)
        if found:
            shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            self.warnings.append(f"{len(found)} computed value(s) were not finite (NaN or infinity) and are left "
                                 f"empty: {shown}; check the model's weights and outputs")
        return self

    def metric(self, name: str, group: str | None = None) -> Metric:
        for metric in self.metrics:
            if metric.name == name and metric.group == group:
                return metric
        raise KeyError(f"probe {self.probe!r} has no metric {name!r}" + (f" for group {group!r}" if group else ""))


class DatasetRecord(_Strict):
    name: str
    source: str
    sha256: str
    rows: int


Stage = Literal["pretraining", "fine-tuning", "loading", "probe", "rendering"]


class StageTiming(_Strict):
    """Wall time of one stage of a run: training the subject, loading (and hashing) it, one probe, rendering."""

    stage: Stage
    probe: str | None = None  # the probe's name, for stage "probe"
    duration_s: float = Field(ge=0.0, allow_inf_nan=False)
    reused: bool = False  # a cached model or a probe result stored by an interrupted run was reused, not made


class RunInfo(_Strict):
    id: str
    started: str
    duration_s: float = Field(ge=0.0, allow_inf_nan=False)
    seed: int
    threads: int
    package_versions: dict[str, str]
    git_sha: str | None = None
    hardware: dict[str, str] = Field(default_factory=dict)
    command: str = ""
    stages: list[StageTiming] = Field(default_factory=list)  # in the order they ran


class HubSource(_Strict):
    """Where a model fetched from the Hugging Face hub came from: the repository id, the revision asked for (a
    branch, tag or commit hash; None: the default branch) and the commit it resolved to, which pins the files."""

    repo_id: str
    revision: str | None = None
    commit: str


class SubjectInfo(_Strict):
    """The audited model. ``path`` is its folder (for a hub model: the snapshot folder in the Hugging Face cache,
    ``hub`` says which repository and commit it holds); the sha256 of each of its files is in ``manifest.models``."""

    path: str
    name: str
    model_type: str
    sha256: str
    parameters: int
    tokenizer: str
    capabilities: list[str]
    model_card: dict[str, Any] = Field(default_factory=dict)
    hub: HubSource | None = None


class Verdict(_Strict):
    """The outcome of one policy rule (see audit.gate).

    ``inconclusive``: the evidence could not decide the rule (the interval reaches across the bound, or the probe
    marked the metric inconclusive); ``passed`` is then False and ``severity`` is what the policy's
    ``inconclusive`` setting makes of it ("fail" blocks the gate, "warn" does not).
    """

    rule: str
    probe: str
    metric: str
    group: str | None = None
    statistic: str
    observed: float | None = Field(allow_inf_nan=False)
    bound: float | None = Field(allow_inf_nan=False)
    operator: Literal["<=", ">=", "no-regression"]
    severity: Literal["fail", "warn"]
    passed: bool
    message: str
    inconclusive: bool = False
    ci_low: float | None = Field(None, allow_inf_nan=False)
    ci_high: float | None = Field(None, allow_inf_nan=False)


SelfCheckStatus = Literal["recovered", "not recovered", "not checked"]


class SelfCheckRow(_Strict):
    """One planted effect of the audited subject, and whether the audit's probes found it (see audit.self_check).

    ``expected`` says in words what was planted and what a working probe should show; ``condition`` is the test
    applied to the measurement; ``measured`` says what the probe reported, with its interval; ``value`` /
    ``ci_low`` / ``ci_high`` are the numbers the condition reads first (``probe``, ``metric``, ``group`` name
    them). ``status`` "not checked" (with ``reason``) means the probe did not run or could not measure it: not a
    failure of the self-check.
    """

    effect: str
    title: str
    expected: str
    condition: str
    probe: str
    metric: str
    group: str | None = None
    value: float | None = Field(None, allow_inf_nan=False)
    ci_low: float | None = Field(None, allow_inf_nan=False)
    ci_high: float | None = Field(None, allow_inf_nan=False)
    measured: str = ""
    status: SelfCheckStatus
    reason: str = ""


class SelfCheck(_Strict):
    """The known-answer check of a run whose subject carries a planted truth (the calibration scenario's bias,
    canaries planted in its pretraining text).

    ``planted`` summarises the truth the rows test; ``enforced`` says whether a row not recovered makes
    ``rai-audit run`` exit non-zero (the default audit; a ``--quick`` run is not enforced).
    """

    planted: dict[str, Any] = Field(default_factory=dict)
    enforced: bool = False
    rows: list[SelfCheckRow] = Field(default_factory=list)

    @property
    def recovered(self) -> bool:
        """No row was checked and missed (rows not checked do not count against it)."""
        return all(row.status != "not recovered" for row in self.rows)


class FileDigest(_Strict):
    """One file inside a model folder: its name relative to the folder, sha256 of its bytes, size in bytes."""

    name: str
    sha256: str
    bytes: int


class ModelFolderDigests(_Strict):
    """Every file of a model folder the audit used, as it was when the audit ran.

    ``roles``: "subject" (the audited model), "mlm" / "causal-lm" (the language model the probes score),
    "pretrained" (the model the classifier was fine-tuned from, used for shadow/reference models); one folder may
    play several roles.
    ``files`` are the regular files at the top of the folder (weights, config, tokenizer files, our training
    records and task data), hidden files excepted, sorted by name; sub-folders are not read when loading and are
    left out.
    """

    roles: list[str]
    path: str
    files: list[FileDigest]


class ExternalFileDigest(_Strict):
    """A file read from outside the model folders (a dataset file, the policy), by its absolute path."""

    path: str
    sha256: str
    bytes: int
    dataset: str | None = None


class Manifest(_Strict):
    """sha256 digests of everything an audit read, so that ``rai-audit verify`` can recompute them.

    ``config_sha256`` is ``json_sha256`` of ``results.config`` (the config as run); ``policy`` is the policy file
    that gated the run (``run --policy``), None otherwise. Datasets loaded from the hub have no local file and
    appear only in ``results.datasets``.
    """

    algorithm: Literal["sha256"] = "sha256"
    config_sha256: str
    models: list[ModelFolderDigests] = Field(default_factory=list)
    dataset_files: list[ExternalFileDigest] = Field(default_factory=list)
    policy: ExternalFileDigest | None = None


def canonical_json(value: Any) -> bytes:
    """The canonical serialisation digests are taken of: ``json.dumps`` with sorted keys, no whitespace
    (separators ``,`` and ``:``), non-ASCII characters as themselves, NaN/Infinity refused (``allow_nan=False``,
    they are not JSON), encoded as UTF-8 (a lone surrogate, which a JSON ``\\u`` escape can produce, encoded as
    by Python's ``surrogatepass``)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8", "surrogatepass")


def json_sha256(value: Any) -> str:
    """Hex sha256 of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def content_sha256(document: dict[str, Any]) -> str:
    """The self-digest of a results document (the fingerprint).

    Canonical content: the results.json document as parsed JSON (a dict), with its top-level key
    ``results_sha256`` removed, serialised by ``canonical_json``. So whitespace, indentation and key order of the
    file do not matter; any change of a value, key or array order does.
    """
    return json_sha256({key: value for key, value in document.items() if key != SELF_DIGEST_FIELD})


class AuditResults(_Strict):
    """The whole of ``results.json``.

    ``manifest`` and ``results_sha256`` (the self-digest, see ``content_sha256``) are filled when the results are
    written (``to_json``); they are None only in results read from schema 1.0 files.
    """

    schema_version: str = SCHEMA_VERSION
    run: RunInfo
    subject: SubjectInfo
    datasets: list[DatasetRecord] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    probes: list[ProbeResult] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    self_check: SelfCheck | None = None
    manifest: Manifest | None = None
    results_sha256: str | None = None

    def probe(self, name: str) -> ProbeResult:
        for result in self.probes:
            if result.probe == name:
                return result
        raise KeyError(f"results have no probe {name!r}")

    def json_document(self) -> dict[str, Any]:
        """The results as the JSON document ``to_json`` writes, without the self-digest.

        Round-tripped through JSON text so that it equals what a reader parses back (e.g. non-string keys of
        free-form dicts become strings), which the fingerprint is defined on.
        """
        payload = self.model_dump(mode="json", exclude={SELF_DIGEST_FIELD})
        return json.loads(json.dumps(payload, ensure_ascii=False))

    def fingerprint(self) -> str:
        """The self-digest of these results (``content_sha256``), whatever ``results_sha256`` holds."""
        return content_sha256(self.json_document())

    @model_validator(mode="after")
    def _no_non_finite_records(self) -> AuditResults:
        """Free-form records (the config as run, the model card) hold no NaN/infinity: JSON has none."""
        found: list[str] = []
        scrub_non_finite(self.config, "config", found)
        scrub_non_finite(self.subject.model_card, "model_card", found)
        return self

    def to_json(self) -> str:
        """results.json text, sealed: ``results_sha256`` is the fingerprint of the content written."""
        document = self.json_document()
        document[SELF_DIGEST_FIELD] = content_sha256(document)
        # strict JSON: a NaN or infinity that reached here is a bug, raised rather than written as bare NaN
        return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"


class ResultsFileError(InputError):
    """A results.json that cannot be read: not JSON, another schema version, or not matching the schema."""


def _refuse_non_finite(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON number")


def load_results(path: str | Path) -> AuditResults:
    """Read and validate a results.json; raise ResultsFileError with a one-line reason."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_non_finite)
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: file not found; expected a results.json written by `rai-audit run`")
    except IsADirectoryError:
        raise ResultsFileError(f"{path}: is a folder; expected a results.json file") from None
    except OSError as error:
        raise ResultsFileError(f"{path}: cannot be read ({error.strerror}); expected a results.json file") from None
    except RecursionError:
        raise ResultsFileError(f"{path}: JSON nested too deeply; expected a results.json") from None
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError, as are NaN/Infinity
        raise ResultsFileError(f"{path}: not valid JSON ({error}); expected a results.json") from None
    if not isinstance(payload, dict):
        raise ResultsFileError(f"{path}: expected a JSON object at the top level")
    version = payload.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise ResultsFileError(
            f"{path}: schema_version {version!r} is not supported; this rai-audit reads "
            f"{', '.join(map(repr, READABLE_SCHEMA_VERSIONS))} (re-run the audit with this version)"
        )
    try:
        return AuditResults.model_validate(payload)
    except RecursionError:
        raise ResultsFileError(f"{path}: nested too deeply; expected a results.json") from None
    except ValueError as error:
        first = str(error).splitlines()
        raise ResultsFileError(f"{path}: does not match the results schema: {' '.join(first[:3])}") from None


SCHEMA_PATH = Path(__file__).parent / "schema" / "results.schema.json"


def json_schema() -> dict[str, Any]:
    return AuditResults.model_json_schema()


if __name__ == "__main__":  # regenerate the shipped JSON Schema
    SCHEMA_PATH.parent.mkdir(exist_ok=True)
    SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
