"""Gates for CI: `--fail-under [STRATEGY:]METRIC=VALUE`, `--baseline RUN_DIR` (a regression against a saved run),
and the JSON and JUnit XML files CI systems read. A failed gate makes `harness compare` exit 1."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.records.run import RunRecord
from harness.run.folder import CasesFile, read_run
from harness.suite.load import LoadedSuite

GATE = re.compile(
    r"^(?:(?P<strategy>[A-Za-z0-9][A-Za-z0-9_.-]*):)?(?P<metric>[A-Za-z0-9][A-Za-z0-9_.-]*)=(?P<value>.+)$"
)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class CiOutputs:
    """What `harness compare` was asked for besides the run: gates, a baseline, result files."""

    fail_under: list[str]
    baseline: Path | None = None
    json: Path | None = None
    junit: Path | None = None


def check_outputs(ci: CiOutputs, loaded: LoadedSuite) -> None:
    """Refuse, before any call, a --fail-under the suite cannot meet, an unwritable output file, an unreadable
    baseline."""
    for text in ci.fail_under:
        parse_gate(
            text, [s.label for s in loaded.suite.scorers], [s.name for s in loaded.suite.strategies], str(loaded.path)
        )
    for flag, path in (("--json", ci.json), ("--junit", ci.junit)):
        if path is not None:
            writable(path, flag)
    if ci.baseline is not None:
        read_run(ci.baseline)


def run_gates(ci: CiOutputs, record: RunRecord, run_dir: Path) -> list[Check]:
    """The gates' results on the finished run, written to the JSON and JUnit files when asked."""
    checks = gate_checks(record, ci.fail_under)
    if ci.baseline is not None:
        checks += regression_checks(record, run_dir, ci.baseline)
    if ci.json:
        write_json(ci.json, record, checks)
    if ci.junit:
        write_junit(ci.junit, record, checks)
    return checks


def parse_gate(text: str, metrics: list[str], strategies: list[str], where: str) -> tuple[str | None, str, float]:
    """`[STRATEGY:]METRIC=VALUE`, checked against the metrics and strategies of the suite or run named `where`."""
    m = GATE.match(text.strip())
    example = f"{metrics[0] if metrics else 'label_accuracy'}=0.8"
    if not m:
        raise ConfigError(
            f"--fail-under {text!r}: expected METRIC=VALUE or STRATEGY:METRIC=VALUE, e.g. {example}. "
            "Fix: write it in that form."
        )
    try:
        value = float(m["value"])
    except ValueError:
        raise ConfigError(
            f"--fail-under {text!r}: {m['value']!r} is not a number. Fix: e.g. {m['metric']}=0.8."
        ) from None
    if m["metric"] not in metrics:
        raise ConfigError(
            f"--fail-under {text!r}: no scorer named '{m['metric']}' in {where}. Fix: use one of {', '.join(metrics)}."
        )
    if m["strategy"] and m["strategy"] not in strategies:
        raise ConfigError(
            f"--fail-under {text!r}: no strategy named '{m['strategy']}' in {where}. "
            f"Fix: use one of {', '.join(strategies)}, or leave it out to gate the winner."
        )
    return m["strategy"], m["metric"], value


def gate_checks(record: RunRecord, gates: list[str]) -> list[Check]:
    """Each gate on the named strategy, or on the decision's winner (the strategy that would ship)."""
    checks = []
    metrics = sorted({k for s in record.strategies.values() for k in s.metrics})
    for text in gates:
        strategy, metric, value = parse_gate(text, metrics, list(record.strategies), "this run")
        target = strategy or (record.decision.winner if record.decision else None) or _best(record, metric)
        summary = record.strategies.get(target) if target else None
        mean = summary.metrics[metric].mean if summary and metric in summary.metrics else None
        passed = mean is not None and mean >= value
        checks.append(
            Check(
                f"{target}: {metric} >= {value:g}",
                passed,
                f"{metric} of {target} is {'-' if mean is None else f'{mean:.4f}'}"
                + ("" if strategy else " (the decision's winner)"),
            )
        )
    return checks


def _best(record: RunRecord, metric: str) -> str | None:
    scored = [
        (s.metrics[metric].mean, name)
        for name, s in record.strategies.items()
        if metric in s.metrics and s.metrics[metric].mean is not None
    ]
    return max(scored)[1] if scored else None


def regression_checks(record: RunRecord, run_dir: Path, baseline: Path) -> list[Check]:
    """Each strategy in both runs, paired on the cases both answered: a regression is a drop the paired test
    settles and that is at least the suite's minimum worthwhile gain (noise alone does not fail CI)."""
    from harness.suite.schema import DecisionSpec
    from harness.verdict.paired import compare_paired
    from harness.verdict.pairs import relation
    from harness.verdict.summary import latest, per_case_values

    old = read_run(baseline)
    metric = record.primary_metric
    policy = record.suite.decision or DecisionSpec()
    min_gain, confidence = policy.min_gain, policy.confidence
    new_rows = latest(CasesFile(run_dir / "cases.jsonl").read())
    old_rows = latest(CasesFile(baseline / "cases.jsonl").read())
    if old.primary_metric != metric:
        raise ConfigError(
            f"--baseline {baseline}: that run decided on '{old.primary_metric}', this one on '{metric}'; "
            "they cannot be compared. Fix: give a baseline run of the same suite."
        )
    shared = [name for name in record.strategies if name in old.strategies]
    if not shared:
        raise ConfigError(
            f"--baseline {baseline}: none of its strategies ({', '.join(old.strategies)}) is in this run "
            f"({', '.join(record.strategies)}). Fix: give a baseline run of the same suite."
        )
    checks = []
    for name in shared:
        mine = per_case_values([r for k, r in new_rows.items() if k[0] == name], metric)[0]
        theirs = per_case_values([r for k, r in old_rows.items() if k[0] == name], metric)[0]
        a = {c: sum(v) / len(v) for c, v in mine.items()}
        b = {c: sum(v) / len(v) for c, v in theirs.items()}
        if not set(a) & set(b):
            raise ConfigError(
                f"--baseline {baseline}: strategy '{name}' has no test case in common with this run. "
                "Fix: give a baseline run on the same test split."
            )
        pair = compare_paired(name, name, a, b, binary=True, confidence=confidence)
        worse = relation(pair, min_gain) == "worse"
        checks.append(
            Check(
                f"{name}: no regression against {baseline}",
                not worse,
                f"{metric} {pair.mean_a:.4f} now, {pair.mean_b:.4f} then, {pair.diff:+.4f} on "
                f"{pair.n} shared cases, p={pair.p_value:.2g}",
            )
        )
    return checks


def writable(path: Path, flag: str) -> Path:
    """An output file's folder is created; a path that cannot be written is a usage error before any call. No empty
    file is left behind by the check (a run that then fails writes nothing there)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with path.open("a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot write there ({exc.strerror}). Fix: give a writable path.") from None
    return path


def write_json(path: Path, record: RunRecord, checks: list[Check]) -> None:
    metric = record.primary_metric
    out: dict[str, Any] = {
        "suite": record.suite_name,
        "status": record.status,
        "primary_metric": metric,
        "decision": record.decision.model_dump(include={"status", "verdict", "winner"})
        if record.decision
        else dict.fromkeys(("status", "verdict", "winner")),
        "strategies": {
            name: {
                "mean": s.metrics[metric].mean if metric in s.metrics else None,
                "ci": [s.metrics[metric].ci_low, s.metrics[metric].ci_high] if metric in s.metrics else None,
                "n": s.n_done,
                "errors": s.n_errors,
                "p95_s": s.latency.p95_s,
                "per_request_usd": s.cost.per_request_usd if s.cost else None,
            }
            for name, s in record.strategies.items()
        },
        "checks": [asdict(c) for c in checks],
        "passed": all(c.passed for c in checks),
    }
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def write_junit(path: Path, record: RunRecord, checks: list[Check]) -> None:
    """JUnit XML: one test case per gate and per strategy (a strategy fails when all its answers failed)."""
    import xml.etree.ElementTree as ET

    metric = record.primary_metric
    cases = [(c.name, c.passed, c.detail) for c in checks]
    for name, s in record.strategies.items():
        m = s.metrics.get(metric)
        ok = s.n_done > 0 and s.n_errors < s.n_done
        detail = (
            f"{metric} {m.mean:.4f} [{m.ci_low}, {m.ci_high}], {s.n_errors} errors of {s.n_done}"
            if m and m.mean is not None
            else f"{s.n_errors} errors of {s.n_done}"
        )
        cases.append((f"{name}: answers", ok, detail))
    suite = ET.Element(
        "testsuite",
        name=f"harness.{record.suite_name}",
        tests=str(len(cases)),
        failures=str(sum(not ok for _, ok, _ in cases)),
        errors="0",
    )
    for name, ok, detail in cases:
        case = ET.SubElement(suite, "testcase", classname=f"harness.{record.suite_name}", name=name)
        if not ok:
            ET.SubElement(case, "failure", message=detail).text = detail
        ET.SubElement(case, "system-out").text = detail
    verdict = record.decision.verdict if record.decision else None
    if verdict:
        ET.SubElement(suite, "system-out").text = verdict
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
