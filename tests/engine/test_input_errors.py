"""Every error that means bad input derives from audit.errors.InputError, the one class the CLI catches (exit 2,
one line); errors that reveal a bug do not."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from audit.cli import app
from audit.compare import CompareError
from audit.config import AuditConfigError
from audit.data.errors import DatasetError, DatasetNotFoundError
from audit.data.scenarios import ScenarioConfigError
from audit.data.task import TaskDataError
from audit.errors import InputError
from audit.gate import PolicyError
from audit.model.configuration import ConfigError as ModelConfigError
from audit.outputs import OutputPathError
from audit.results import ResultsFileError
from audit.subject import SubjectLoadError
from audit.train.canaries import CanaryManifestError
from audit.train.errors import ConfigError as TrainConfigError
from audit.train.errors import TrainInputError
from audit.verify import VerifyInputError
from probes.attribution.adapter import EmptyTextError
from probes.attribution.methods import AttributionSettingsError
from probes.base import ProbeInputError, UndeclaredMetricError, UnknownProbeError, get_probe
from probes.fairness.dialect import DialectModelError

INPUT_ERRORS = [AuditConfigError, AttributionSettingsError, CanaryManifestError, CompareError, DatasetError,
                DatasetNotFoundError, DialectModelError, EmptyTextError, ModelConfigError, OutputPathError,
                PolicyError, ProbeInputError, ResultsFileError, ScenarioConfigError, SubjectLoadError,
                TaskDataError, TrainConfigError, TrainInputError, UnknownProbeError, VerifyInputError]


@pytest.mark.parametrize("error", INPUT_ERRORS, ids=lambda error: error.__name__)
def test_input_errors_share_one_base_class(error):
    assert issubclass(error, InputError)


def test_a_bug_is_not_an_input_error():
    assert not issubclass(UndeclaredMetricError, InputError)


def test_unknown_probe_stays_a_key_error_with_a_readable_message():
    with pytest.raises(KeyError) as caught:
        get_probe("crows_pair")
    assert isinstance(caught.value, InputError)
    assert str(caught.value).startswith("unknown probe 'crows_pair'")  # not KeyError's quoted repr


@pytest.mark.parametrize("error", [DialectModelError, ScenarioConfigError, InputError])
def test_the_cli_reports_any_input_error_as_one_line_and_exit_2(monkeypatch, tmp_path, error):
    def raise_it(*args, **kwargs):
        raise error("the bad input, and what is expected\nsecond line")

    monkeypatch.setattr("audit.gate.run_gate", raise_it)
    outcome = CliRunner().invoke(app, ["gate", str(tmp_path / "results.json"), "--policy", str(tmp_path / "p.toml")])
    assert outcome.exit_code == 2, outcome.output
    assert outcome.stderr.strip() == "error: the bad input, and what is expected"


def test_a_bug_is_not_swallowed_as_bad_input(monkeypatch, tmp_path):
    def raise_it(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("audit.gate.run_gate", raise_it)
    outcome = CliRunner().invoke(app, ["gate", str(tmp_path / "results.json"), "--policy", str(tmp_path / "p.toml")])
    assert outcome.exit_code != 2 and isinstance(outcome.exception, ValueError)
