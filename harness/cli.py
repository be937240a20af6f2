"""The `harness` command line: a thin layer over harness.run (compare), harness.suite (load, validate),
harness.costs (estimate) and the helpers in harness.commands."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.commands.ci import CiOutputs
    from harness.run.compare import CompareOptions
    from harness.suite.load import LoadedSuite

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Compare few-shot prompting, RAG and fine-tuning on one task, and decide which pays off.",
)


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if sys.stderr.isatty() and not os.environ.get("CI"):
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=_console(), show_path=False, show_time=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("harness").setLevel(level)
    logging.getLogger("strategies").setLevel(level)
    if not verbose:
        quiet_third_parties()


# What the libraries underneath print that a user cannot act on: their deprecation notices, per-step bars, the
# tokenizer's "sequence length is longer than" while a corpus is split (long passages are split again, never cut).
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
QUIET_MODULES = (
    r"(transformers|trl|peft|accelerate|datasets|torch|huggingface_hub|langchain.*|sentence_transformers|ragas)"
)


def quiet_third_parties() -> None:
    """Keep third-party noise out of the output (read at their import, and inherited by training workers); the
    harness's own warnings stay. `--verbose` leaves it all in."""
    import warnings

    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=QUIET_MODULES)
    for name in ("transformers", "datasets", "accelerate", "peft", "trl", "sentence_transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _fail(exc: HarnessError) -> NoReturn:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(exc.exit_code)


@app.command()
def compare(
    suite: Path = typer.Argument(..., help="Suite file (or a folder holding suite.yaml)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (default: runs/<suite name>). Rerunning resumes it."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N test cases."),
    strategies: str | None = typer.Option(None, "--strategies", help="Comma-separated strategy names to run."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Rerun cases that ended in an error."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the response cache."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard results in the run folder instead of resuming."),
    fail_under: list[str] | None = typer.Option(
        None,
        "--fail-under",
        help="[STRATEGY:]METRIC=VALUE: exit 1 when the strategy (default: the decision's winner) "
        "scores below VALUE. Repeatable.",
    ),
    baseline: Path | None = typer.Option(
        None,
        "--baseline",
        help="A saved run folder: exit 1 when a strategy is worse than there (paired on the same "
        "cases, by at least the suite's min_gain, settled).",
    ),
    cancel_on_abort: bool = typer.Option(
        False,
        "--cancel-on-abort",
        help="Cancel a provider's fine-tuning job on Ctrl-C (default: ask at a terminal, "
        "else leave it running; a rerun follows it).",
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write a summary with the gates' results as JSON for CI."
    ),
    junit: Path | None = typer.Option(None, "--junit", help="Write the gates and each strategy as JUnit XML for CI."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run (or resume) the comparison; write run.json, cases.jsonl and decision.md; print the verdict."""
    from harness.commands.ci import CiOutputs, check_outputs
    from harness.run.compare import CompareOptions
    from harness.suite.load import load_suite

    _setup_logging(verbose)
    if cancel_on_abort:
        os.environ["HARNESS_CANCEL_ON_ABORT"] = "1"
    names = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else None
    ci = CiOutputs(fail_under=fail_under or [], baseline=baseline, json=json_out, junit=junit)
    try:
        loaded = load_suite(suite)
        check_outputs(ci, loaded)  # bad gates, an unusable baseline or output path: refused before any call
    except HarnessError as exc:
        _fail(exc)
    options = CompareOptions(
        out=out, limit=limit, strategies=names, retry_errors=retry_errors, use_cache=not no_cache, overwrite=overwrite
    )
    _run_and_gate(loaded, options, ci)


def _run_and_gate(loaded: LoadedSuite, options: CompareOptions, ci: CiOutputs) -> None:
    """Run with progress on the terminal, print the verdict, then the CI gates (exit 1 when one fails)."""
    from harness.commands.ci import run_gates
    from harness.commands.console import print_summary
    from harness.run.compare import run_compare
    from harness.run.progress import make_progress

    progress = options.progress = make_progress(_console())
    try:
        record, run = run_compare(loaded, options)
    except HarnessError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo("\ninterrupted: finished cases are saved; rerun the same command to resume.", err=True)
        raise typer.Exit(130) from None
    finally:
        if hasattr(progress, "stop"):
            progress.stop()
    print_summary(record, run.run_dir)
    try:
        checks = run_gates(ci, record, run.run_dir)
    except HarnessError as exc:
        _fail(exc)
    for check in checks:
        typer.echo(f"{'pass' if check.passed else 'FAIL'}: {check.name} ({check.detail})")
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


@app.command()
def estimate(
    suite: Path = typer.Argument(..., help="Suite file (or a folder holding suite.yaml)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N test cases."),
    strategies: str | None = typer.Option(None, "--strategies", help="Comma-separated strategy names."),
    json_out: bool = typer.Option(False, "--json", help="Print the estimate as JSON."),
    calibrate: bool = typer.Option(
        True,
        "--calibrate/--no-calibrate",
        help="Predict local models' time and dollars from this machine's measured speed (measured once, cached).",
    ),
) -> None:
    """Tokens and dollars per strategy (inference, dev, training, indexing, judging) before any call, and the
    smallest difference the test set can detect; for local models, the predicted time and dollars on this machine.
    Exits 2 when the estimate is above the suite's budget_usd or budget_hours."""
    from harness.costs.estimate import check_budget, render
    from harness.costs.estimate import estimate as make_estimate
    from harness.suite.load import load_suite

    _setup_logging(False)

    names = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else None
    try:
        loaded = load_suite(suite, machine=False)
        if names:
            from harness.run.plan import select

            names = [s.name for s in select(loaded, names)]  # unknown names refused; each seed counted
        est = make_estimate(loaded, limit=limit, strategies=names, calibrate=calibrate)
    except HarnessError as exc:
        _fail(exc)
    if json_out:
        typer.echo(est.model_dump_json(indent=2))
    else:
        for line in render(est):
            typer.echo(line)
        _machine_notes(loaded)
    try:
        check_budget(loaded, est, 0.0)
    except HarnessError as exc:
        _fail(exc)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by `harness compare`."),
    html: Path | None = typer.Option(
        None, "--html", help="Write a self-contained HTML report here (no network needed)."
    ),
    md: Path | None = typer.Option(None, "--md", help="Write a Markdown report here (for a review or a pull request)."),
    port: int = typer.Option(8501, "--port", help="Port of the Streamlit app."),
    headless: bool = typer.Option(False, "--headless", help="Do not open a browser (serve only)."),
) -> None:
    """Open the decision report (Streamlit) on a run folder, or write it as static HTML / Markdown."""
    from harness.errors import require
    from harness.run.folder import read_run

    try:
        read_run(run_dir)  # a missing, unreadable or older run folder is refused with its fix, before anything starts
        if html or md:
            require("altair", extra="report", purpose="harness report")
            # reports/ is loaded by name, like the built-in components: the core never imports it
            export = importlib.import_module("reports.export")
            render_html, render_md = export.render_html, export.render_md

            for path, render in ((html, render_html), (md, render_md)):
                if path is not None:
                    from harness.commands.ci import writable

                    writable(path, "--html" if render is render_html else "--md")
                    path.write_text(render(run_dir), encoding="utf-8")
                    typer.echo(f"wrote {path}")
            return
        require("streamlit", extra="report", purpose="harness report")
    except HarnessError as exc:
        _fail(exc)
    spec = importlib.util.find_spec("reports.app")
    if spec is None or spec.origin is None:  # an installation without the report: the extra names the fix
        _fail(HarnessError("the report is not installed with this harness. Fix: pip install 'ft-harness[report]'."))
    app_path = Path(spec.origin)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path),
        "--server.port",
        str(port),
        "--server.headless",
        "true" if headless else "false",
        "--browser.gatherUsageStats",
        "false",
        "--",
        str(run_dir),
    ]
    os.environ["HARNESS_REPORT_RUN"] = str(run_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)  # this process becomes the server: signals reach it, nothing is orphaned


@app.command()
def validate(suite: Path = typer.Argument(..., help="Suite file (or a folder holding suite.yaml).")) -> None:
    """Check the suite and its data files without touching any model."""
    from harness.suite.load import load_suite

    try:
        loaded = load_suite(suite, machine=False)
    except HarnessError as exc:
        _fail(exc)
    ds = loaded.dataset
    typer.echo(
        f"ok: {loaded.path}: {len(loaded.suite.strategies)} strategies, {len(loaded.suite.backends)} backends, "
        f"{len(loaded.suite.scorers)} scorers; cases train={len(ds.train)} dev={len(ds.dev)} test={len(ds.test)}"
    )
    _machine_notes(loaded)


@app.command()
def prices(
    suite: Path | None = typer.Argument(
        None, help="A suite file (or a folder holding suite.yaml): also its overrides and each backend's price."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables (for scripts)."),
) -> None:
    """Show the price sheet harness ships with (date, age, every model's and device's prices with sources and
    retirement dates) and, for a suite, its economics overrides and what each backend will be charged."""
    from harness.commands.prices import prices_report, render
    from harness.suite.load import load_suite

    loaded = None
    if suite is not None:
        try:
            loaded = load_suite(suite, machine=False)
        except HarnessError as exc:
            _fail(exc)
    report = prices_report(loaded.suite if loaded else None)
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=160)
    render(report, console, suite_path=loaded.path if loaded else None)


def _machine_notes(loaded) -> None:
    """A valid suite this machine cannot run (e.g. a GPU tuner on a laptop): said, not refused."""
    for note in loaded.machine_notes:
        typer.echo(f"note: not runnable on this machine (compare will refuse it here): {note}", err=True)


@app.command()
def schema(
    run: bool = typer.Option(
        False, "--run", help="The schema of a run folder's run.json instead (for tools that read runs)."
    ),
) -> None:
    """Print the JSON Schema of the suite file (for editor completion), or of run.json with --run."""
    if run:
        from harness.records.run import run_json_schema

        typer.echo(json.dumps(run_json_schema(), indent=2))
        return
    from harness.suite.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def tune(
    suite: Path = typer.Argument(..., help="Suite file (or a folder holding suite.yaml)."),
    strategy: str | None = typer.Option(None, "--strategy", help="The finetune strategy (default: the only one)."),
    export_only: bool = typer.Option(
        False,
        "--export-only",
        help="Write the tuner's files (AutoTrain: config.yml "
        "and data/train.jsonl for its UI or CLI), or with --format openai_chat the train/dev splits as OpenAI's "
        "chat fine-tuning file, to --out and train nothing.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Folder for --export-only."),
    serve_out: Path | None = typer.Option(
        None,
        "--serve-out",
        help="Write the finished fine-tune here for a serving engine (vLLM, TGI, llama.cpp), with SERVING.md.",
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="With --serve-out: merged (default: adapter folded into the base) or adapter. With --export-only: "
        "openai_chat (the chat JSONL OpenAI and Azure OpenAI fine-tune from).",
    ),
    run_dir: Path | None = typer.Option(
        None, "--run", help="With --serve-out: export the checkpoint this run folder chose on dev."
    ),
) -> None:
    """Train a finetune strategy's model without answering the test set (`harness compare` then reuses it),
    with --export-only write what its tuner would be given, or with --serve-out write the finished fine-tune in
    the layout serving engines load."""
    from harness.commands.tune import export_for_serving, export_openai_chat, export_tuning, train_only
    from harness.errors import ConfigError

    try:
        if serve_out is not None:
            if fmt not in (None, "merged", "adapter"):
                raise ConfigError(f"--format {fmt}: not a serving format. Fix: use merged or adapter.")
            if export_only:
                raise ConfigError("--serve-out and --export-only do different things. Fix: use one of them.")
            for line in export_for_serving(suite, strategy, serve_out, fmt or "merged", run_dir):
                typer.echo(line)
        elif run_dir is not None:
            raise ConfigError("--run only goes with --serve-out. Fix: add --serve-out FOLDER.")
        elif fmt is not None and not export_only:
            raise ConfigError(
                f"--format {fmt} goes with --export-only (openai_chat) or --serve-out (merged, adapter). Fix: add one."
            )
        elif export_only:
            if fmt not in (None, "openai_chat"):
                raise ConfigError(
                    f"--format {fmt}: not an export format. Fix: use --format openai_chat, or leave it out to write "
                    "the tuner's own files (AutoTrain)."
                )
            if out is None:
                raise ConfigError("--export-only needs --out FOLDER. Fix: add --out FOLDER.")
            if fmt == "openai_chat":
                for line in export_openai_chat(suite, strategy, out):
                    typer.echo(line)
                return
            for path in export_tuning(suite, strategy, out):
                typer.echo(f"wrote {path}")
            typer.echo(
                f"next: cd {out} && autotrain --config config.yml   (or upload data/train.jsonl in AutoTrain's UI)"
            )
        else:
            for line in train_only(suite, strategy):
                typer.echo(line)
    except HarnessError as exc:
        _fail(exc)


@app.command(name="list")
def list_components() -> None:
    """List registered backends, strategies, scorers and tuners, built-in and plugins."""
    from harness.builtins import ALL

    width = max(len(kind) for registry in ALL.values() for kind in registry.refs()) + 1
    for section, registry in ALL.items():
        typer.echo(f"{section}:")
        refs = registry.refs()
        if not refs:
            typer.echo("  (none yet)")
        for kind, ref in refs.items():
            typer.echo(
                f"  {kind:<{width}} {ref}" + (f"\n  {'':<{width}} {doc}" if (doc := registry.summary(kind)) else "")
            )


@app.command()
def init(
    directory: Path | None = typer.Argument(None, help="Folder to create the suite in."),
    data: Path | None = typer.Option(None, "--from", help="A JSONL, CSV or Parquet file of cases."),
    template: str | None = typer.Option(
        None,
        "--template",
        help="Copy an example suite: quickstart, squad_qa, e2e_nlg, ... "
        "(`harness init --list-templates` describes them).",
    ),
    list_templates: bool = typer.Option(
        False, "--list-templates", help="List the templates, one line each with their suite files, and exit."
    ),
    from_promptfoo: Path | None = typer.Option(
        None, "--from-promptfoo", help="Convert a promptfoo config (promptfooconfig.yaml): prompts, tests, assertions."
    ),
    from_lm_eval: Path | None = typer.Option(
        None, "--from-lm-eval", help="Convert an lm-eval task YAML over its local data files."
    ),
    force: bool = typer.Option(False, "--force", help="Write into an existing suite folder, overwriting its files."),
) -> None:
    """Start a suite: copy an example suite (--template NAME), scaffold one from a data file (--from FILE), or
    convert a promptfoo config (--from-promptfoo) or an lm-eval task (--from-lm-eval)."""
    from harness.commands import init as scaffold
    from harness.errors import ConfigError

    try:
        if list_templates:
            _print_templates(scaffold.list_templates())
            return
        sources = [s for s in (data, template, from_promptfoo, from_lm_eval) if s is not None]
        if len(sources) != 1 or directory is None:
            raise ConfigError(
                "harness init needs a folder and exactly one of --from FILE, --template NAME, --from-promptfoo "
                "CONFIG or --from-lm-eval TASK.yaml. Fix: e.g. `harness init my-suite --template quickstart`, or "
                "`harness init my-suite --from cases.jsonl`."
            )
        if template is not None:
            chosen = scaffold.copy_template(directory, template, force=force)
            typer.echo(f"wrote {directory} from the {chosen.name} template (its README.md says what it measures)")
            for variant in chosen.suite_files[1:]:
                typer.echo(f"variant on the same data: {directory / variant}")
            path = directory
        elif data is not None:
            path = scaffold.scaffold(directory, data, force=force)
            typer.echo(f"wrote {path}")
        else:
            from harness.commands import convert_tools

            if from_promptfoo is not None:
                path, unmapped = convert_tools.from_promptfoo(directory, from_promptfoo, force=force)
            elif from_lm_eval is not None:
                path, unmapped = convert_tools.from_lm_eval(directory, from_lm_eval, force=force)
            typer.echo(f"wrote {path}, {path.parent / 'data'}/ and {path.parent / 'README.md'} (what mapped to what)")
            if unmapped:
                typer.echo(f"not mapped ({len(unmapped)}, also listed in the README):")
            for note in unmapped:
                typer.echo(f"  - {note}")
    except HarnessError as exc:
        _fail(exc)
    typer.echo(f"next: harness validate {path} && harness compare {path}")


def _print_templates(templates) -> None:
    width = max((len(t.name) for t in templates), default=0)
    for t in templates:
        typer.echo(f"{t.name:<{width}}  {t.description}")
        typer.echo(f"{'':<{width}}  suite files: {', '.join(t.suite_files)}")
    typer.echo("start one with: harness init DIR --template NAME")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
