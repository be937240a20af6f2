#!/usr/bin/env python3
"""Regenerate the measured results in each example suite's README from a run of `harness compare`.

    python suites/update_readmes.py [SUITE ...] [--run-dir DIR] [--check]

For each suite (a folder name under suites/ or a path to a folder holding suite.yaml; default: every folder under
suites/ with a suite.yaml) this runs `harness compare SUITE/suite.yaml --out runs/readmes/NAME --overwrite`, or with
`--run-dir DIR` reads an existing run folder instead, and writes the verdict, a table of the strategies (quality
with its 95% CI, $ per 1,000 requests, latency, setup), the paired comparisons, fine-tuning's payback and the run's
facts between the `<!-- results:start -->` and `<!-- results:end -->` markers of the suite's README.md.
The response, index and fine-tune caches under HARNESS_HOME make a rerun with the same inputs take seconds.

The "Run:" line (date, wall time, model calls and cache hits) changes with every rerun even when every answer comes
from the cache and every number is the same; it is left out of the comparison, so that a rerun from the caches
keeps the README as it is (with the facts of the run that made the answers) and `--check` passes.

`--check` writes nothing: it prints a diff and exits 1 when a README's block differs from what the run gives.
A missing suite, README marker or run folder is an error: a message and exit 2.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import yaml

from harness.commands.console import comparison_lines
from harness.costs.money import usd
from harness.errors import HarnessError
from harness.records.decision import Decision
from harness.records.run import RunRecord
from harness.records.setup import FewShotGiven, FineTuneGiven, RagGiven, StrategySetup
from harness.run.folder import read_run
from harness.verdict.explain import render_markdown
from reports.export import strategy_cells

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "suites"
START, END = "<!-- results:start -->", "<!-- results:end -->"
RUN_LINE = "- Run: "  # the volatile facts: ignored when comparing blocks


class Refused(Exception):
    """A usage error: the message says what to do; the script exits 2."""


# ---- which suites, which runs ------------------------------------------------------------------------------------


def find_suite(name: str) -> Path:
    """A suite folder from its name under suites/ or a path; it must hold suite.yaml and README.md."""
    folder = SUITES / name if (SUITES / name / "suite.yaml").is_file() else Path(name)
    if not (folder / "suite.yaml").is_file():
        known = ", ".join(p.parent.name for p in sorted(SUITES.glob("*/suite.yaml")))
        where = folder if folder.is_absolute() or len(folder.parts) > 1 else _shown(SUITES / name)
        raise Refused(f"no suite '{name}': {where}/suite.yaml not found. The suites are: {known}.")
    if not (folder / "README.md").is_file():
        raise Refused(f"{folder / 'README.md'} not found: the results go into the suite's README.")
    return folder


def suite_name(folder: Path) -> str:
    data = yaml.safe_load((folder / "suite.yaml").read_text(encoding="utf-8")) or {}
    return str(data.get("name", folder.name))


def run_compare(folder: Path) -> Path:
    """`harness compare` into runs/readmes/NAME (fresh each time; the caches make a rerun fast)."""
    out = REPO / "runs" / "readmes" / folder.name
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "compare",
        str(folder / "suite.yaml"),
        "--out",
        str(out),
        "--overwrite",
    ]
    print(
        f"{folder.name}: harness compare {_shown(folder / 'suite.yaml')} --out {_shown(out)} --overwrite",
        file=sys.stderr,
        flush=True,
    )
    # the run's table goes to stderr, so that stdout holds only this script's own report (and --check's diff)
    done = subprocess.run(command, stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise Refused(
            f"harness compare {folder / 'suite.yaml'} failed (exit {done.returncode}); see its message above."
        )
    return out


def read_full_run(run_dir: Path, folder: Path) -> RunRecord:
    """The run's record, refused when it is of another suite or not a full run (a README shows full runs only)."""
    if not run_dir.is_dir():
        raise Refused(f"run folder {run_dir} not found.")
    record = read_run(run_dir)
    if record.suite_name != suite_name(folder):
        raise Refused(
            f"{run_dir} is a run of suite '{record.suite_name}', not of {folder / 'suite.yaml'} "
            f"('{suite_name(folder)}')."
        )
    planned = [s.name for s in record.suite.strategies]
    missing = [n for n in planned if n not in record.strategies]
    if record.status != "complete" or record.options.limit or missing:
        raise Refused(
            f"{run_dir} is not a full run (status {record.status}"
            + (f", --limit {record.options.limit}" if record.options.limit else "")
            + (f", without {', '.join(missing)}" if missing else "")
            + f"). Fix: rerun `harness compare {folder / 'suite.yaml'}` without --limit or --strategies."
        )
    return record


# ---- the block ---------------------------------------------------------------------------------------------------


def render_block(record: RunRecord, folder: Path) -> str:
    """The Markdown between the markers, markers included."""
    primary = record.primary_metric
    others = sorted({m for s in record.strategies.values() for m in s.metrics if m != primary})
    metrics = [primary, *others]
    d = record.decision
    monthly = monthly_costs(d)
    # answers outside the label set and failed calls: shown where a strategy has any
    invalid = any(s.metrics[primary].n_invalid for s in record.strategies.values() if primary in s.metrics)
    errors = any(s.n_errors for s in record.strategies.values())
    header = [
        "strategy",
        f"{primary} [95% CI]",
        *others,
        *(["invalid answers"] if invalid else []),
        *(["errors"] if errors else []),
        "$ per 1,000 requests",
        "p50 s",
        "p95 s",
        "prompt tokens",
        "output tokens",
        "setup",
        "setup $",
        *([monthly["title"]] if monthly else []),
    ]
    rows = []
    for name, s in record.strategies.items():
        cells = strategy_cells(s, metrics)
        score = s.metrics.get(primary)
        rows.append(
            [
                name,
                *(cells[m] for m in metrics),
                *([f"{score.n_invalid} / {score.n}" if score else "-"] if invalid else []),
                *([f"{s.n_errors} / {s.n_done}"] if errors else []),
                cells["$ per 1,000 requests"],
                cells["p50 s"],
                cells["p95 s"],
                _round(s.input_tokens_mean),
                _round(s.output_tokens_mean, ".1f"),
                setup_times(s.setup),
                usd(s.cost.setup_usd) if s.cost and s.cost.setup_usd else "-",
                *([monthly.get(name, "-")] if monthly else []),
            ]
        )
    n_cases = max((m.n for s in record.strategies.values() for m in s.metrics.values()), default=0)
    out = [
        START,
        "",
        f"**{_text(d.verdict)}**" if d else "No decision in this run.",
        "",
        *([f"Why: {_text(record.diagnosis.sentence)}", ""] if record.diagnosis and record.diagnosis.sentence else []),
        f"{n_cases} test cases per strategy; quality with its 95% CI, cost and latency as `harness compare` "
        "measured them:",
        "",
        _table(header, rows),
        "",
    ]
    given = [f"- {name}: {text}" for name, s in record.strategies.items() if (text := given_text(s, primary))]
    if given:
        out += ["What each strategy was given:", "", *given, ""]
    paired = comparison_lines(record)
    if paired:
        out += [paired[0][0].upper() + paired[0][1:], "", *(f"- {line.strip()}" for line in paired[1:]), ""]
    payback = finetune_section(d)
    if payback:
        out += ["Fine-tuning against each alternative (from `decision.md`):", "", payback, ""]
    out += [
        *facts(record),
        "",
        f"_Generated from `harness compare {_shown(folder / 'suite.yaml')}` by "
        f"`python suites/update_readmes.py {folder.name}`; edit that script, not this block._",
        "",
        END,
    ]
    return "\n".join(out)


def monthly_costs(decision: Decision | None) -> dict[str, str]:
    """Each strategy's monthly cost at the decision's volumes ("$0.036 to $3.61"), with the column's title."""
    volumes = decision.by_volume if decision else []
    if not volumes:
        return {}
    out = {"title": "$ a month at " + " to ".join(f"{b.volume:,}" for b in volumes) + " requests"}
    for row in volumes[0].ranking:
        out[row.strategy] = " to ".join(
            usd(next((r.monthly_usd for r in b.ranking if r.strategy == row.strategy), None)) for b in volumes
        )
    return out


def setup_times(setup: StrategySetup) -> str:
    """Training, indexing and the dev answers that chose a setting, each with the time it took when it was made."""
    given = setup.given
    parts = []
    if isinstance(given, FineTuneGiven):
        steps = f", {given.training.steps} steps" if given.training.steps else ""
        parts.append(f"training {_duration(given.training.wall_s)}{steps}")
    if isinstance(given, RagGiven):
        parts.append(f"indexing {_duration(given.index.build_s)}")
    if setup.dev and setup.dev.answers:
        parts.append(f"{setup.dev.answers} dev answers, {_duration(setup.dev.compute_s)}")
    return "; ".join(parts) or "-"


def given_text(s, primary: str) -> str:
    """What the strategy was given, where it chose something: exemplars, retrieval, epochs and the dev scores."""
    given = s.setup.given
    parts = []
    if isinstance(given, FewShotGiven):
        parts.append(f"{given.k} exemplars ({given.selection}) from {given.pool}")
    if isinstance(given, RagGiven):
        if given.exemplar_ids:
            parts.append(f"{len(given.exemplar_ids)} exemplars")
        parts.append(f"{given.retriever.kind} retrieval, top_k {given.retriever.top_k} of {given.corpus.chunks} chunks")
        choice = given.top_k_selection
        if choice and choice.candidates:
            scores = ", ".join(
                f"{c.dev_score:.3f} at k={c.top_k}" for c in choice.candidates if c.dev_score is not None
            )
            parts.append(f"top_k {choice.chosen} chosen on {choice.on} ({choice.metric} {scores})")
    if isinstance(given, FineTuneGiven) and given.epochs_trained:
        scores = " / ".join(f"{x:.3f}" for x in given.dev_scores if x is not None)
        parts.append(
            f"{given.tuner} fine-tune, {given.epochs_trained} epochs; dev {primary} by epoch "
            f"{scores}; epoch {_round(given.chosen.epoch)} kept"
        )
        if given.dev_still_rising_at_last_epoch:
            parts.append("dev was still rising at the last epoch")
    return "; ".join(parts)


def finetune_section(decision: Decision | None) -> str:
    """decision.md's table of fine-tuning against each alternative: payback in requests, break-even volume."""
    if not decision or not decision.finetune:
        return ""
    lines = render_markdown(decision).split("\n")
    start = lines.index("## Fine-tuning against each alternative") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(line for line in lines[start:end] if line.strip())


def facts(record: RunRecord) -> list[str]:
    hardware = record.manifest.hardware if record.manifest else None
    gpu = ", ".join(hardware.gpus) if hardware and hardware.gpus else "no GPU"
    counts = record.options.counts
    wall = _duration((record.finished_at - record.started_at).total_seconds()) if record.finished_at else "unfinished"
    seed = record.manifest.seed if record.manifest else record.suite.seed
    bases = sorted({s.cost.pricing.basis for s in record.strategies.values() if s.cost and s.cost.pricing.basis})
    pol = record.decision.policy if record.decision else None
    policy = f"decision: minimum gain {pol.min_gain:g}, setup spread over {pol.horizon_months} months" if pol else ""
    # retrieval runs on every request, cache hit or not: its latency is this run's, so it belongs on this line
    retrieval = "".join(
        f"; {name} retrieval p50 {s.retrieval.latency.p50_s * 1000:.0f} ms, p95 "
        f"{s.retrieval.latency.p95_s * 1000:.0f} ms per query"
        for name, s in record.strategies.items()
        if s.retrieval and s.retrieval.latency.p50_s is not None and s.retrieval.latency.p95_s is not None
    )
    prices = f"sheet {record.prices.version} of {record.prices.date}" if record.prices else "unknown"
    return [
        f"{RUN_LINE}{_day(record.finished_at or record.started_at)}, wall time {wall}; "
        f"{counts.model_calls:,} model calls, {counts.cache_hits:,} answers from the response "
        "cache" + (" (each with the latency measured when it was made)" if counts.cache_hits else "") + retrieval,
        f"- Machine: {hardware.cpu if hardware else 'unknown CPU'}, {hardware.cpu_count if hardware else '?'} cores, "
        f"{hardware.memory_gib if hardware else '?'} GiB memory, {gpu}",
        f"- Prices: {prices}" + "".join(f"; {basis}" for basis in bases) + (f"; {policy}" if policy else ""),
        f"- harness {record.harness_version}, seed {seed}",
    ]


# ---- the README --------------------------------------------------------------------------------------------------


def replace_block(text: str, block: str, readme: Path) -> str:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise Refused(
            f"{readme}: needs one '{START}' line and, after it, one '{END}' line around the results; "
            "add them around the results section once."
        )
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return before + block + after


def stable(text: str) -> list[str]:
    return [line for line in text.split("\n") if not line.startswith(RUN_LINE)]


def update(folder: Path, record: RunRecord, *, check: bool) -> bool:
    """Write (or with check, compare) the README's block; True when it was already up to date."""
    readme = folder / "README.md"
    old = readme.read_text(encoding="utf-8")
    new = replace_block(old, render_block(record, folder), readme)
    if stable(old) == stable(new):
        print(f"{_shown(readme)}: up to date")
        return True
    if check:
        sys.stdout.writelines(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"{_shown(readme)} (now)",
                f"{_shown(readme)} (from the run)",
            )
        )
        print(f"{_shown(readme)}: out of date; run `python suites/update_readmes.py {folder.name}`")
        return False
    readme.write_text(new, encoding="utf-8")
    print(f"{_shown(readme)}: updated")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help="suite folder names under suites/ or paths (default: every suite, or the run's suite)",
    )
    parser.add_argument("--run-dir", type=Path, help="an existing run folder to read instead of running compare")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a README is out of date")
    args = parser.parse_args(argv)
    try:
        names = args.suites
        if args.run_dir is not None and len(names) > 1:
            raise Refused("--run-dir is one run: name at most one suite with it.")
        if args.run_dir is not None and not names:
            if not args.run_dir.is_dir():
                raise Refused(f"run folder {args.run_dir} not found.")
            names = [read_run(args.run_dir).suite_name]
        folders = [find_suite(n) for n in names] or [p.parent for p in sorted(SUITES.glob("*/suite.yaml"))]
        current = True
        for folder in folders:
            run_dir = args.run_dir if args.run_dir is not None else run_compare(folder)
            current &= update(folder, read_full_run(run_dir, folder), check=args.check)
    except (Refused, HarnessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if args.check and not current else 0


# ---- formatting --------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_text(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _text(value: object) -> str:
    """Text from a run shown as text: no HTML."""
    return str(value).replace("<", "&lt;").replace(">", "&gt;")


def _round(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min"


def _day(when: datetime) -> str:
    return when.date().isoformat()


def _shown(path: Path) -> str:
    """A path relative to the repository where it is inside it, so the block is the same on every checkout."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
