"""Property-based tests of the readers of user files — audit configs, policies, results.json: whatever the bytes,
a reader returns a valid object or raises its one named error (exit 2 in the CLI); never anything else.

Most examples call the readers directly (fast, and none of them imports torch); a few go through the CLI's `gate`
and `report` commands, which must exit 0, 1 or 2 with no traceback.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic_results import build_results

from audit.config import AuditConfigError, load_audit_config
from audit.gate import PolicyError, load_policy
from audit.results import ResultsFileError, load_results

MANY = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
BASE_RESULTS = json.loads(build_results(n_rows=2).to_json())


def _paths(document, prefix=()):
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _paths(value, (*prefix, index))


RESULT_PATHS = [path for path in _paths(BASE_RESULTS) if path]


@st.composite
def mutated_results(draw) -> str:
    """The synthetic results with a few values replaced or removed, serialised (non-finite floats as bare NaN)."""
    document = copy.deepcopy(BASE_RESULTS)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(RESULT_PATHS))
        parent = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed or replaced the path
            continue
    return json.dumps(document)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value if item is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    return '""'  # TOML has no null


RULE_KEYS = ["name", "probe", "metric", "group", "max", "min", "statistic", "severity", "no_regression", "maxx"]
rule_values = (st.sampled_from(["group_metrics", "gap", "ci_high", "value", "fail", "warn", "x"]) | st.floats()
               | st.booleans() | st.integers(-5, 5) | json_values)


@st.composite
def policy_texts(draw) -> str:
    rules = draw(st.lists(st.dictionaries(st.sampled_from(RULE_KEYS), rule_values, max_size=8), max_size=3))
    lines = []
    for rule in rules:
        lines.append("[[rule]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in rule.items() if value is not None]
    return "\n".join(lines) + "\n"


CONFIG_KEYS = ["seed", "threads", "data_dir", "cache_dir", "subject", "probes", "extra"]
config_values = (st.fixed_dictionaries({}, optional={
    "model": st.text(max_size=8), "mlm": st.text(max_size=8), "intended_use": st.text(max_size=8),
    "train": st.dictionaries(st.sampled_from(["pretrain", "finetune", "x"]), json_values, max_size=2),
    "run": st.lists(st.sampled_from(["all", "crows_pairs", "nope"]), max_size=3),
    "settings": st.dictionaries(st.sampled_from(["membership", "crows_pairs", "nope"]),
                                st.dictionaries(st.text(max_size=5), scalars, max_size=2), max_size=2),
}) | json_values)


@st.composite
def config_texts(draw) -> str:
    document = draw(st.dictionaries(st.sampled_from(CONFIG_KEYS), config_values, max_size=5))
    return "".join(f"{json.dumps(key)} = {_toml_value(value)}\n" for key, value in document.items()
                   if value is not None)


raw_documents = st.binary(max_size=200) | st.text(max_size=200).map(str.encode)


@pytest.fixture(scope="module")
def scratch() -> Path:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _write(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


@MANY
@given(document=mutated_results() | raw_documents)
def test_results_reader_returns_results_or_a_results_error(scratch, document):
    try:
        load_results(_write(scratch, "results.json", document))
    except ResultsFileError as error:
        assert "\n" not in str(error).strip()


@MANY
@given(document=policy_texts() | raw_documents)
def test_policy_reader_returns_a_policy_or_a_policy_error(scratch, document):
    try:
        load_policy(_write(scratch, "policy.toml", document))
    except PolicyError as error:
        assert "\n" not in str(error).strip()


@MANY
@given(document=config_texts() | raw_documents)
def test_config_reader_returns_a_config_or_a_config_error(scratch, document):
    try:
        load_audit_config(_write(scratch, "audit.toml", document))
    except AuditConfigError as error:
        assert "\n" not in str(error).strip()


@FEW
@given(results=mutated_results(), policy=policy_texts())
def test_gate_and_report_commands_exit_0_1_or_2(scratch, results, policy):
    from typer.testing import CliRunner

    from audit.cli import app

    results_path = _write(scratch, "cli-results.json", results)
    policy_path = _write(scratch, "cli-policy.toml", policy)
    runner = CliRunner()
    for arguments in (["gate", str(results_path), "--policy", str(policy_path)],
                      ["report", str(results_path), "--out", str(scratch / "report.html")]):
        outcome = runner.invoke(app, arguments)
        assert outcome.exit_code in (0, 1, 2), (arguments[0], outcome.output)
        assert outcome.exception is None or isinstance(outcome.exception, SystemExit), repr(outcome.exception)
