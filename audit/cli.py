"""The ``rai-audit`` command line (contract in DESIGN.md).

Exit codes: 0 success; 1 a policy rule with severity "fail" was broken (gate, run --policy) or a probe ended in
error (run); 3 (run) the self-check failed: a planted effect of the subject was not recovered, in a run that
enforces it (the default audit; results and report are still written); 2 bad usage or bad input — one line on stderr naming what is wrong and what is expected, no traceback
unless ``--debug`` (which prints it, then still exits 2), and no partial output files; 130 interrupted
(Ctrl-C) during `pretrain`, with a line saying whether ``--resume`` can continue. Inputs and output paths are
checked before any work starts.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from audit.errors import InputError
from audit.import_hook import call_after_import

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Responsible-AI audits of text encoders: bias, fairness, privacy leakage, explanations.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets the catalog knows and where they resolve.")
app.add_typer(data_app, name="data")

console = Console(stderr=True)
_state = {"debug": False}


def _report_error(error: BaseException) -> None:
    """One line on stderr (after the traceback with --debug)."""
    if _state["debug"]:
        traceback.print_exception(error)
    from audit.terminal import printable

    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    typer.echo(f"error: {printable(message)}", err=True)  # messages may quote results or policy text


def _handles_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except InputError as error:  # bad input, not a bug: every such error derives from it
            _report_error(error)  # with --debug too: the traceback is extra, the exit code stays 2
            raise typer.Exit(2) from None

    return wrapper


def _print_version(asked: bool) -> None:
    if asked:
        from audit import __version__

        typer.echo(f"rai-audit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logging."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Show progress logging."),
          version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    _state["debug"] = debug
    level = logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # the CLI owns the console: no library progress bars or load reports between our lines
        call_after_import("transformers", _quiet_transformers)  # commands that only read results never load it


def _quiet_transformers() -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _quiet_option() -> bool:
    return typer.Option(False, "--quiet", "-q", help="No progress display (bars on a terminal, lines in a log).")


def _progress_reporter(quiet: bool):
    from audit.progress_display import reporter_for

    return reporter_for(console, quiet=quiet)


def _wrote(path: Path) -> None:
    from rich.markup import escape

    from audit.terminal import printable

    console.print(f"wrote {escape(printable(path))}")


def _data_dir_option() -> Path | None:
    return typer.Option(None, "--data-dir", help="Folder laid out like shared/data (else $RAI_AUDIT_DATA_DIR).")


@app.command()
@_handles_errors
def run(
    config: Path | None = typer.Argument(None, help="Audit config (TOML). Without it and --model: the built-in "
                                         "default."),
    out: Path = typer.Option(..., "--out", help="Output folder for results.json, report.html, junit.xml."),
    model: str | None = typer.Option(None, "--model", help="Audit this model folder or Hugging Face hub model "
                                     "ORG/NAME[@REVISION] (a classifier, masked LM or causal LM) without a config "
                                     "file; not with CONFIG. An existing folder wins over a hub id."),
    task: Path | None = typer.Option(None, "--task", help="CSV or JSONL task data for the classifier probes: "
                                     "columns text, label (a label name of the model or its index) and one or more "
                                     "group columns (every other column); optional split (train/validation/test, "
                                     "default test) and id. Replaces the task data the model folder carries."),
    probes: str | None = typer.Option(None, "--probes", help="Run only these probes (comma-separated; see "
                                      "`rai-audit probes`)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke-test budgets (few examples and resamples, no "
                               "reference models) for a CI check that the audit runs; not a full audit, and the "
                               "report says so."),
    policy: Path | None = typer.Option(None, "--policy", help="Gate the run on this policy file."),
    data_dir: Path | None = _data_dir_option(),
    seed: int | None = typer.Option(None, "--seed", help="Override the config's seed."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads (results depend on it)."),
    fresh: bool = typer.Option(False, "--fresh", help="Run every probe, ignoring results an interrupted run "
                               "into --out stored."),
    quiet: bool = _quiet_option(),
) -> None:
    """Run an audit and write results.json, report.html and junit.xml.

    Without CONFIG, `--model DIR` audits a model folder (or `--model ORG/NAME[@REVISION]` a hub model, fetched
    with huggingface_hub: safetensors weights, configs and tokenizer files only; HF_HOME, HF_HUB_OFFLINE and
    HF_TOKEN apply): a classifier (one fine-tuned by rai-audit brings its
    masked LM through finetune.json and its task data with split membership), a masked LM or a causal LM; the
    probes it cannot serve are skipped with the reason. `--task FILE` gives a classifier's fairness probes their
    data: a .csv (header row) or .jsonl file, one example a row, with a `text` column, a `label` column holding
    one of the model's label names (config.json's id2label) or a label index, and at least one group column
    (every column besides text, label, split and id is a group, e.g. `group` or `gender`). Rows are held-out
    `test` examples unless a `split` column says train, validation or test (mitigation fits its thresholds on
    validation rows; membership inference compares train rows, ones the model learnt from, with held-out ones);
    `id` (optional) must be unique. The positive label is the one the model's own task.json records, else label
    1 of two, else label 0. A missing, empty or malformed file, a missing column or an unknown label is an error
    before any work. `--quick` cuts every probe's budget to a smoke test (recorded in results.json's config and
    stated in the report); it applies to the default audit and to a CONFIG too.

    Each finished probe's result is kept in DIR/.probe-results until the outputs are written, so a run that was
    killed resumes: running it again into the same --out reuses the probes that finished (same model, data,
    settings and seed) and runs the others.

    When the subject carries a planted truth (the calibration scenario's bias, canaries in its pretraining text)
    the results and the report get a self-check: per planted effect, expected vs measured, recovered or not.
    Exit codes: 0 done; 1 a policy rule with severity "fail" was broken or a probe ended in error; 3 the
    self-check failed (a planted effect not recovered) in a run that enforces it — the default audit, or a config
    with fail_on_self_check = true, not with --quick — which takes precedence over 1; 2 bad input.
    """
    from audit.config import command_line_config
    from audit.outputs import check_output_folder, write_run_outputs
    from audit.probe_store import remove_store
    from audit.progress import reporting_to
    from audit.runner import check_subject, run_audit, select_probes

    check_output_folder(out)
    audit_config = command_line_config(
        config, model=model, task=str(task) if task is not None else None, probes=probes, quick=quick,
        overrides={"seed": seed, "threads": threads, "data_dir": str(data_dir) if data_dir else None})
    probe_list = select_probes(audit_config)  # unknown probes and out-of-range settings fail here, before any work
    hub = check_subject(audit_config)  # a model folder or task file that cannot be used, too
    gate_policy = None
    if policy is not None:
        from audit.digests import external_file_digest
        from audit.gate import check_rules_against_probes, load_policy

        gate_policy = load_policy(policy)  # validate before hours of work, not after
        check_rules_against_probes(gate_policy, probe_list)
        policy_digest = external_file_digest(policy)  # the rules as read, for the manifest
    progress = _progress_reporter(quiet)
    results = run_audit(audit_config, progress=progress, command=" ".join(sys.argv), resume_from=out, fresh=fresh,
                        hub=hub)
    gate_error = None
    if gate_policy is not None:
        from audit.gate import evaluate_policy

        try:
            results.verdicts = evaluate_policy(gate_policy, results)
            results.manifest.policy = policy_digest
        except Exception as error:  # noqa: BLE001  (finished results are written whatever gating raised)
            gate_error = error
    with reporting_to(progress):
        written = write_run_outputs(results, out)
    remove_store(out)  # the run is complete: running it again starts afresh
    _print_summary(results, written)
    if gate_error is not None:
        raise gate_error  # reported like any other error; the results above are kept
    broken = any(not v.passed and v.severity == "fail" for v in results.verdicts or [])
    errored = any(result.status == "error" for result in results.probes)
    self_check = results.self_check
    if self_check is not None and self_check.enforced and not self_check.recovered:
        raise typer.Exit(SELF_CHECK_EXIT_CODE)  # the run missed its own known answers: its verdicts are suspect
    raise typer.Exit(1 if broken or errored else 0)


SELF_CHECK_EXIT_CODE = 3  # distinct from 1 (policy failed, probe error) and 2 (bad input)


def _print_summary(results, written: dict[str, Path]) -> None:
    """Per probe: outcome, headline metric with its interval and time taken; then the files, the report last."""
    from rich.markup import escape

    from audit.outputs import REPORT_FILE
    from audit.progress_display import format_duration
    from audit.terminal import printable
    from reports.render import format_interval, format_number

    table = Table(title="rai-audit summary")
    for column in ("probe", "outcome", "headline metric (interval)", "time"):
        table.add_column(column, justify="right" if column == "time" else "left")
    for result in results.probes:
        metric = _headline_metric(result)
        headline = "-"
        if metric is not None:
            group = f" [{metric.group}]" if metric.group is not None else ""
            headline = f"{metric.name}{group} = {format_number(metric.value)} {format_interval(metric)}".strip()
        table.add_row(escape(printable(result.probe)), _outcome(result), escape(printable(headline)),
                      format_duration(result.duration_s))
    console.print(table)
    if results.config.get("quick"):
        console.print("[yellow]quick run[/yellow]: smoke-test budgets (--quick), not a full audit")
    if results.self_check is not None:
        _print_self_check(results.self_check)
    for name, path in written.items():
        if name != REPORT_FILE:
            _wrote(path)
    if REPORT_FILE in written:
        console.print(f"report: [bold]{escape(printable(written[REPORT_FILE]))}[/bold]", highlight=False)


_OUTCOME_STYLE = {"fail": "red", "error": "red", "warn": "yellow", "inconclusive": "magenta", "pass": "green"}
_SELF_CHECK_STYLE = {"recovered": "green", "not recovered": "red", "not checked": "yellow"}


def _print_self_check(self_check) -> None:
    """One line per planted effect: recovered, not recovered or not checked, and what was measured or why not."""
    from rich.markup import escape

    from audit.terminal import printable

    for row in self_check.rows:
        style = _SELF_CHECK_STYLE[row.status]
        detail = row.measured if row.status != "not checked" else row.reason
        console.print(f"self-check {escape(printable(row.title))}: [{style}]{row.status}[/{style}] "
                      f"{escape(printable(detail))}", highlight=False)
    if not self_check.recovered:
        consequence = (f"exit code {SELF_CHECK_EXIT_CODE}" if self_check.enforced
                       else "not enforced in this run")
        console.print(f"[red]self-check failed[/red]: a planted effect was not recovered ({consequence})")


def _outcome(result) -> str:
    """The probe's status when it did not run to the end, else its most severe finding."""
    from audit.results import FINDING_SEVERITY

    if result.status != "ok":
        outcome = result.status
    else:
        outcome = max((finding.level for finding in result.findings), key=FINDING_SEVERITY.get, default="ok")
    style = _OUTCOME_STYLE.get(outcome)
    return f"[{style}]{outcome}[/{style}]" if style else outcome


def _headline_metric(result):
    """The metric the probe's most severe finding is about (overall if written so, else its first group), else
    the probe's first overall metric."""
    from audit.results import FINDING_SEVERITY

    for finding in sorted(result.findings, key=lambda finding: -FINDING_SEVERITY[finding.level]):
        named = sorted((metric for metric in result.metrics if metric.name == finding.metric),
                       key=lambda metric: metric.group is not None)
        if named:
            return named[0]
    return next((metric for metric in result.metrics if metric.group is None), None)


@app.command()
@_handles_errors
def report(results_json: Path = typer.Argument(..., help="A results.json written by `rai-audit run`."),
           out: Path = typer.Option(..., "--out", help="HTML file to write.")) -> None:
    """Re-render the HTML report from a results.json alone."""
    from audit.outputs import check_output_file, write_atomic
    from audit.results import load_results
    from reports import render_html

    check_output_file(out)
    write_atomic(out, render_html(load_results(results_json)))
    _wrote(out)


@app.command()
@_handles_errors
def pretrain(config: str = typer.Option(..., "--config", help="Pretraining TOML, or a preset: tiny, demo, small, base, "
                                        "tiny-causal, small-causal."),
             out: Path = typer.Option(..., "--out", help="Output model folder."),
             resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
             data_dir: Path | None = _data_dir_option(),
             quiet: bool = _quiet_option()) -> None:
    """Pretrain our transformer: masked-language or next-token modelling (after Ctrl-C, --resume continues)."""
    from audit.outputs import check_output_folder
    from audit.progress import reporting_to
    from audit.train.config import load_pretrain_config
    from audit.train.pretrain import pretrain as run_pretrain

    check_output_folder(out, staged_beside=True)
    pretrain_config = load_pretrain_config(config)
    try:
        with reporting_to(_progress_reporter(quiet)):
            path = run_pretrain(pretrain_config, out, data_dir=data_dir, resume=resume)
    except KeyboardInterrupt as interrupt:
        _report_error(KeyboardInterrupt(_interrupted_message(out)).with_traceback(interrupt.__traceback__))
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    _wrote(path)


INTERRUPTED_EXIT_CODE = 130  # the shell's code for a command ended by SIGINT (128 + 2)


def _interrupted_message(out: Path) -> str:
    from audit.train.checkpoint import STATE_FILE
    from audit.train.pretrain import CHECKPOINT_DIR, work_dir_for

    work = work_dir_for(out)
    if (work / CHECKPOINT_DIR / STATE_FILE).is_file():
        return (f"interrupted; the last checkpoint is kept in {work}: run the same command with --resume to "
                "continue from it")
    return "interrupted before the first checkpoint, so nothing was kept; run the same command again to start"


@app.command()
@_handles_errors
def finetune(config: str = typer.Option(..., "--config", help="Fine-tuning TOML (or preset: davidson, scenario)."),
             from_dir: Path = typer.Option(..., "--from", help="Pretrained model folder."),
             out: Path = typer.Option(..., "--out", help="Output classifier folder."),
             data_dir: Path | None = _data_dir_option(),
             quiet: bool = _quiet_option()) -> None:
    """Fine-tune a pretrained encoder as a classifier (writes split membership for the privacy probes)."""
    from audit.outputs import check_output_folder
    from audit.progress import reporting_to
    from audit.train.config import load_finetune_config
    from audit.train.finetune import run_finetune

    check_output_folder(out, staged_beside=True)
    finetune_config = load_finetune_config(config)
    with reporting_to(_progress_reporter(quiet)):
        path = run_finetune(finetune_config, from_dir, out, data_dir=data_dir)
    _wrote(path)


@app.command()
@_handles_errors
def gate(results_json: Path = typer.Argument(..., help="results.json to check."),
         policy: Path = typer.Option(..., "--policy", help="Policy TOML."),
         baseline: Path | None = typer.Option(None, "--baseline", help="Baseline results.json."),
         junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
         output_format: str = typer.Option("table", "--format", help="table or json (printed on stdout).")) -> None:
    """Check a results.json against a policy: exit 0 pass, 1 a fail rule broken, 2 bad input."""
    from audit.gate import run_gate
    from audit.outputs import check_output_file

    if junit is not None:
        check_output_file(junit, option="--junit")
    raise typer.Exit(run_gate(results_json, policy, baseline=baseline, junit_path=junit,
                              output_format=output_format))


@app.command()
@_handles_errors
def compare(runs: list[Path] = typer.Argument(..., help="Two or more results.json files."),
            out: Path = typer.Option(..., "--out", help="HTML file to write.")) -> None:
    """Compare runs side by side with paired statistics."""
    from audit.compare import run_compare
    from audit.outputs import check_output_file

    check_output_file(out)
    run_compare(runs, out)
    _wrote(out)


@app.command()
@_handles_errors
def sweep(sweep_file: Path = typer.Argument(..., help="Sweep file (TOML): subjects × one probe configuration."),
          out: Path = typer.Option(..., "--out", help="Output folder: cells/, leaderboard.html, leaderboard.csv, "
                                   "seed_variance.csv."),
          executor: str = typer.Option("ray", "--executor", help="ray (cells as Ray tasks) or local (one after "
                                       "another in this process; ray is not imported)."),
          workers: int = typer.Option(os.cpu_count() or 1, "--workers", min=1, help="CPUs of the local Ray "
                                      "started for the sweep."),
          address: str | None = typer.Option(None, "--address", help="Join the Ray cluster at this address "
                                             "instead of starting a local one."),
          quiet: bool = _quiet_option()) -> None:
    """Audit every subject of a sweep file (folders, hub ids, recipes × seeds) and write a leaderboard.

    Each finished cell keeps its results under a key of subject + config, so running the sweep again into the
    same --out runs only the cells not finished (failed or interrupted ones); a failing cell is recorded in its
    cell.json and the others go on. Exit 0 when every cell finished, 1 when some failed, 2 bad input.
    """
    from audit.outputs import check_output_folder
    from audit.sweep.executors import RayExecutor, run_local
    from audit.sweep.run import prepare_sweep, run_sweep
    from audit.sweep.spec import SweepSpecError, load_sweep_spec

    if executor not in ("ray", "local"):
        raise SweepSpecError(f"--executor {executor!r}: expected ray or local")
    if address is not None and executor != "ray":
        raise SweepSpecError(f"--address {address} joins a Ray cluster; it needs --executor ray")
    check_output_folder(out)
    spec = load_sweep_spec(sweep_file)
    cells = prepare_sweep(spec, source=str(sweep_file))
    run_cells = run_local
    if executor == "ray":
        ray_executor = RayExecutor(workers=workers, address=address, resources=spec.resources)
        ray_executor.check()
        run_cells = ray_executor.run
    outcome = run_sweep(spec, cells, out, executor=run_cells, progress=_progress_reporter(quiet))
    console.print(f"{len(outcome.ran)} cells run, {len(outcome.skipped)} finished before, "
                  f"{len(outcome.failed)} failed")
    for path in outcome.written.values():
        _wrote(path)
    raise typer.Exit(1 if outcome.failed else 0)


@app.command()
@_handles_errors
def verify(results_json: Path = typer.Argument(..., help="A results.json written by `rai-audit run`."),
           model: Path | None = typer.Option(None, "--model", help="The audited model's folder (else its "
                                             "recorded path)."),
           report_html: Path | None = typer.Option(None, "--report", help="A report.html to match with the "
                                                   "results.")) -> None:
    """Recompute the digests a results.json records: exit 0 all match, 1 a mismatch (named), 2 bad input."""
    from audit.terminal import printable
    from audit.verify import verify_results

    outcome = verify_results(results_json, model_dir=model, report_path=report_html)
    typer.echo(printable(outcome.summary()))  # it quotes paths and names read from the results
    raise typer.Exit(0 if outcome.ok else 1)


@app.command("probes")
def list_probes() -> None:
    """List the registered probes with one-line descriptions."""
    from probes.base import available_probes

    table = Table(show_header=True)
    for column in ("probe", "family", "needs", "description"):
        table.add_column(column)
    for name, probe in available_probes().items():
        table.add_row(name, probe.family, ", ".join(sorted(probe.needs)) or "-", probe.description)
    Console().print(table)


@data_app.command("list")
def data_list(data_dir: Path | None = _data_dir_option()) -> None:
    """Show where each named dataset resolves."""
    from audit.data.catalog import describe_catalog

    table = Table(show_header=True)
    for column in ("dataset", "source", "description"):
        table.add_column(column)
    for row in describe_catalog(data_dir):
        table.add_row(str(row["name"]), str(row["source"]), str(row.get("description", "")))
    Console().print(table)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
