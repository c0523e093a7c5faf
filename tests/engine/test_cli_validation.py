"""Bad input to the CLI is refused before any work: policy rules against the probes' declared metrics, output
paths, probe settings, --threads; --debug keeps exit code 2; finished results survive a gating error; Ctrl-C in
`pretrain` says whether --resume can continue."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from synthetic_results import build_results
from typer.testing import CliRunner

from audit.cli import app
from probes.base import available_probes

OUTPUT_FILES = ("results.json", "report.html", "junit.xml")
UNWRITABLE = Path("/proc/rai-audit-out")  # no file can be created under /proc, not even by root


def invoke(*arguments):
    return CliRunner().invoke(app, [str(argument) for argument in arguments])


def assert_one_line_error(outcome, *expected: str) -> None:
    assert outcome.exit_code == 2, outcome.output
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def audit_config(tmp_path, model_dir, probes=("engine_constant",), extra="") -> Path:
    path = tmp_path / "audit.toml"
    names = ", ".join(f'"{name}"' for name in probes)
    path.write_text(f'seed = 3\n{extra}\n[subject]\nmodel = "{model_dir}"\n[probes]\nrun = [{names}]\n')
    return path


def policy_file(tmp_path, probe: str, metric: str, *, group: str | None = None, severity: str = "fail") -> Path:
    path = tmp_path / "policy.toml"
    group_line = f'group = "{group}"\n' if group is not None else ""
    path.write_text(f'[[rule]]\nname = "the rule"\nprobe = "{probe}"\nmetric = "{metric}"\n{group_line}'
                    f'max = 0.5\nseverity = "{severity}"\n')
    return path


# ---------------------------------------------------------------------------------------------- run --policy
@pytest.mark.parametrize(
    "metric, group, expected",
    [
        # the shipped example's old mistake: the group folded into the metric's name
        ("auc_loss", None, ["'the rule'", "no metric 'auc_loss'", "did you mean metric 'auc' with group 'loss'",
                            "its metrics: auc, balanced_accuracy"]),
        ("auc", "lossy", ["'the rule'", "no group 'lossy'", "'loss'", "'rmia'"]),
        ("auc", None, ["'the rule'", "no overall value", "'lira_online'"]),
    ],
)
def test_default_audit_policy_rules_are_checked_before_the_audit(tmp_path, no_work, metric, group, expected):
    policy = policy_file(tmp_path, "membership", metric, group=group)
    outcome = invoke("run", "--out", tmp_path / "out", "--policy", policy)
    assert_one_line_error(outcome, *expected)
    assert not (tmp_path / "out").exists()


def test_rule_groups_follow_the_probe_config(tmp_path, tiny_classifier_dir, no_work):
    config = audit_config(tmp_path, tiny_classifier_dir, ["membership"],
                          extra='[probes.settings.membership]\nattacks = ["loss"]')
    policy = policy_file(tmp_path, "membership", "auc", group="rmia")
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "out", "--policy", policy),
                          "no group 'rmia'", "expected group 'loss'")


@pytest.mark.parametrize(
    "probe, metric, severity, expected",
    [
        ("engine_constant", "mean_positiv", "fail", ["no metric 'mean_positiv'", "did you mean 'mean_positive'",
                                                     "its metrics: mean_positive, seeded_draw"]),
        ("engine_constnt", "mean_positive", "fail", ["unknown probe 'engine_constnt'", "'engine_constant'"]),
        ("crows_pairs", "metric_score", "fail", ["probe 'crows_pairs' is not among this audit's probes",
                                                 "could only fail"]),
    ],
)
def test_run_policy_mistakes_exit_2_before_any_work(tmp_path, tiny_classifier_dir, engine_probes, no_work,
                                                    probe, metric, severity, expected):
    config = audit_config(tmp_path, tiny_classifier_dir)
    policy = policy_file(tmp_path, probe, metric, severity=severity)
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "out", "--policy", policy), *expected)
    assert not (tmp_path / "out").exists()


def test_a_warn_rule_for_a_probe_not_run_is_allowed(tmp_path, tiny_classifier_dir, engine_probes):
    config = audit_config(tmp_path, tiny_classifier_dir)
    policy = policy_file(tmp_path, "crows_pairs", "metric_score", severity="warn")
    outcome = invoke("run", config, "--out", tmp_path / "out", "--policy", policy)
    assert outcome.exit_code == 0, outcome.output
    verdicts = json.loads((tmp_path / "out" / "results.json").read_text())["verdicts"]
    assert [(v["rule"], v["passed"], v["severity"]) for v in verdicts] == [("the rule", False, "warn")]


def test_a_gating_error_after_the_audit_keeps_the_finished_results(tmp_path, tiny_classifier_dir):
    # The group of a group_metrics metric comes from the data, so a wrong one can only be found in the results.
    config = audit_config(tmp_path, tiny_classifier_dir, ["group_metrics"],
                          extra="[probes.settings.group_metrics]\nn_resamples = 0\nlabel_base_rates = false")
    policy = policy_file(tmp_path, "group_metrics", "selection_rate", group="no such group")
    outcome = invoke("run", config, "--out", tmp_path / "out", "--policy", policy)
    assert outcome.exit_code == 2, outcome.output
    last_line = outcome.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: rule 'the rule'") and "no such group" in last_line
    for name in OUTPUT_FILES:
        assert (tmp_path / "out" / name).is_file(), name
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["probes"][0]["status"] == "ok"


# ---------------------------------------------------------------------------------------------- output paths
@pytest.fixture
def results_file(tmp_path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(build_results(n_rows=3).to_json())
    return path


def test_run_output_folders_are_checked_before_the_audit(tmp_path, tiny_classifier_dir, engine_probes, no_work):
    config = audit_config(tmp_path, tiny_classifier_dir)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert_one_line_error(invoke("run", config, "--out", UNWRITABLE), "--out /proc/rai-audit-out",
                          "cannot write in /proc")
    assert_one_line_error(invoke("run", config, "--out", a_file), "exists and is not a folder")
    assert_one_line_error(invoke("run", config, "--out", a_file / "below"), "is not a folder")


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_training_output_folders_are_checked_before_training(tmp_path, tiny_classifier_dir, no_work, command):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    arguments = ["pretrain", "--config", "tiny"] if command == "pretrain" else [
        "finetune", "--config", "scenario", "--from", tiny_classifier_dir]
    assert_one_line_error(invoke(*arguments, "--out", UNWRITABLE), "cannot write in /proc")
    assert_one_line_error(invoke(*arguments, "--out", a_file), "exists and is not a folder")


def test_file_outputs_are_checked_before_rendering(tmp_path, results_file):
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\nname = "r"\nprobe = "crows_pairs"\nmetric = "gap"\nmax = 1\n')
    folder = tmp_path / "a-folder"
    folder.mkdir()
    cases = [
        (["report", results_file, "--out", folder], "is a folder; expected the path of a file"),
        (["report", results_file, "--out", UNWRITABLE / "report.html"], "cannot write in /proc"),
        (["compare", results_file, results_file, "--out", folder], "is a folder"),
        (["compare", results_file, results_file, "--out", UNWRITABLE / "c.html"], "cannot write in /proc"),
        (["gate", results_file, "--policy", policy, "--junit", folder], "--junit"),
        (["gate", results_file, "--policy", policy, "--junit", UNWRITABLE / "j.xml"], "cannot write in /proc"),
    ]
    for arguments, expected in cases:
        assert_one_line_error(invoke(*arguments), expected)
    assert list(folder.iterdir()) == []


# ---------------------------------------------------------------------------------------------- probe settings
COUNT_PREFIXES = ("batch_size", "n_", "max_", "min_")
# Settings where 0 means something: no bootstrap (fairness intervals are then analytic or absent), the loss attack
# without reference models, or no examples shown in the report.
ZERO_ALLOWED = {
    ("group_metrics", "n_resamples"), ("mitigation", "n_resamples"), ("subgroup_auc", "n_resamples"),
    ("membership", "n_reference_models"), ("attributions", "n_display"), ("identity_attribution", "n_display"),
    ("group_metrics", "max_examples_shown"), ("counterfactual", "n_examples"), ("crows_pairs", "n_examples"),
    ("stereoset", "n_examples"), ("counterfactual_lm", "n_examples"),
    ("extraction", "max_examples"),
}


def _number_settings(probe_class):
    """(name, is_float) of each int or float setting (optional ones included)."""
    for name, field in probe_class.Config.model_fields.items():
        options = typing.get_args(field.annotation) or [field.annotation]
        types = {typing.get_args(t)[0] if typing.get_origin(t) is typing.Annotated else t for t in options}
        types -= {type(None)}
        if types in ({int}, {float}):
            yield name, types == {float}


def _setting_cases():
    for probe_name, probe_class in available_probes().items():
        for setting, is_float in _number_settings(probe_class):
            if setting.startswith(COUNT_PREFIXES) and not is_float:
                bad = [-5] if (probe_name, setting) in ZERO_ALLOWED else [0, -5]
            elif setting in ("confidence", "alpha"):
                bad = [0.0, 1.0, 2.0, -0.1]
            else:
                continue
            for value in bad:
                yield pytest.param(probe_name, setting, value, id=f"{probe_name}.{setting}={value}")


@pytest.mark.parametrize("probe_name, setting, value", list(_setting_cases()))
def test_every_probe_rejects_out_of_range_settings(probe_name, setting, value):
    from probes.base import ProbeInputError

    with pytest.raises(ProbeInputError) as raised:
        available_probes()[probe_name]({setting: value})
    message = str(raised.value)
    assert f"probe {probe_name!r}" in message and f"setting {setting!r}" in message
    assert "greater than" in message or "less than" in message  # the allowed range


def test_the_setting_cases_cover_the_settings_named_in_the_issue():
    ids = {(probe, setting) for probe, setting, _ in (case.values for case in _setting_cases())}
    for probe, setting in (("crows_pairs", "batch_size"), ("crows_pairs", "confidence"),
                           ("crows_pairs", "max_pairs"), ("stereoset", "n_bootstrap"),
                           ("counterfactual", "max_examples"), ("association", "n_permutations")):
        assert (probe, setting) in ids


@pytest.mark.parametrize("setting, value, expected", [
    ("batch_size", "0", "greater than or equal to 1"),
    ("confidence", "2.0", "less than 1"),
    ("max_pairs", "-5", "greater than or equal to 1"),
    ("n_bootstrap", "0", "greater than or equal to 10"),
])
def test_bad_probe_settings_exit_2_before_any_work(tmp_path, tiny_classifier_dir, no_work, setting, value,
                                                   expected):
    config = audit_config(tmp_path, tiny_classifier_dir, ["crows_pairs"],
                          extra=f"[probes.settings.crows_pairs]\n{setting} = {value}")
    outcome = invoke("run", config, "--out", tmp_path / "out")
    assert_one_line_error(outcome, "probe 'crows_pairs'", f"setting {setting!r}", expected)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- threads, --debug
@pytest.mark.parametrize("threads", ["-1", "0"])
def test_threads_below_one_are_refused(tmp_path, tiny_classifier_dir, engine_probes, no_work, threads):
    config = audit_config(tmp_path, tiny_classifier_dir)
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "out", "--threads", threads),
                          "--threads", "'threads'", "greater than or equal to 1")
    config_with_threads = audit_config(tmp_path, tiny_classifier_dir, extra=f"threads = {threads}")
    assert_one_line_error(invoke("run", config_with_threads, "--out", tmp_path / "out"),
                          "'threads'", "greater than or equal to 1")
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback_and_still_exits_2(tmp_path, tiny_classifier_dir, engine_probes, no_work):
    config = audit_config(tmp_path, tiny_classifier_dir, ["engine_constnt"])
    outcome = invoke("--debug", "run", config, "--out", tmp_path / "out")
    assert outcome.exit_code == 2, outcome.output
    assert "Traceback" in outcome.stderr
    assert outcome.stderr.strip().splitlines()[-1].startswith("error: unknown probe 'engine_constnt'")


# ---------------------------------------------------------------------------------------------- Ctrl-C
def pretrain_toml(tmp_path) -> Path:
    from train.train_helpers import write_corpus

    corpus = write_corpus(tmp_path / "corpus.txt")
    path = tmp_path / "pretrain.toml"
    path.write_text(f'preset = "tiny"\n[corpus]\ndataset = "{corpus}"\nmax_length = 24\nheldout_fraction = 0.1\n'
                    "[train]\nmax_steps = 6\ncheckpoint_every = 2\neval_every = 3\neval_sequences = 8\n")
    return path


def interrupt_after(monkeypatch, steps: int | None) -> None:
    """Ctrl-C during training: after ``steps`` steps (a checkpoint is written then), or before the first step."""
    from audit.train import pretrain as pretrain_module

    train = pretrain_module._Trainer.run

    def interrupted(self, *, resume, stop_after_steps):
        if steps is not None:
            train(self, resume=resume, stop_after_steps=steps)
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain_module._Trainer, "run", interrupted)


def test_ctrl_c_in_pretrain_says_resume_continues(tmp_path, monkeypatch):
    config, out = pretrain_toml(tmp_path), tmp_path / "model"
    with monkeypatch.context() as patch:
        interrupt_after(patch, steps=2)
        outcome = invoke("pretrain", "--config", config, "--out", out)
    assert outcome.exit_code == 130, outcome.output
    lines = outcome.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error")] == lines[-1:], outcome.stderr  # one error line
    assert "interrupted" in lines[-1] and "--resume" in lines[-1], outcome.stderr
    assert "pretraining: done" not in outcome.stderr  # an interrupted stage never reads as finished
    resumed = invoke("pretrain", "--config", config, "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert (out / "model.safetensors").is_file()


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_kept(tmp_path, monkeypatch):
    config, out = pretrain_toml(tmp_path), tmp_path / "model"
    interrupt_after(monkeypatch, steps=None)
    outcome = invoke("pretrain", "--config", config, "--out", out)
    assert outcome.exit_code == 130, outcome.output
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing was kept" in lines[0] and "--resume" not in lines[0], outcome.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corpus.txt", "pretrain.toml"]
