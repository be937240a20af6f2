"""`harness init --from-promptfoo`: a promptfoo config (its prompts, test cases and the assertions that map onto
harness scorers) turned into a suite; what does not map is listed in the suite's README and the command's output."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.commands.convert_tools import (
    Conversion,
    Template,
    check_directory,
    default_backend,
    free_name,
    jsonable,
    parse_template,
    strategy_name,
    write_suite,
)
from harness.errors import ConfigError, DataError
from harness.suite.data import read_records
from harness.suite.locations import Loc, format_loc, line_of, load_yaml_with_lines

# Every assertion type promptfoo documents, so a CSV cell 'Paris' is read as equals Paris, not as a type.
_TYPE_NAMES = (
    "equals contains icontains contains-all contains-any icontains-all icontains-any starts-with regex "
    "is-json contains-json is-xml contains-xml is-sql contains-sql is-html is-valid-openai-tools-call "
    "is-valid-openai-function-call similar levenshtein rouge-n bleu gleu meteor llm-rubric "
    "model-graded-closedqa model-graded-factuality factuality answer-relevance context-faithfulness "
    "context-recall context-relevance select-best g-eval classifier moderation perplexity "
    "perplexity-score cost latency webhook javascript python finish-reason is-refusal guardrails"
)
PF_ASSERTION_TYPES = frozenset(_TYPE_NAMES.split())
PF_SCORERS: dict[str, dict[str, Any]] = {  # the promptfoo assertion -> the harness scorer (named after it)
    "equals": {"name": "equals", "kind": "exact_match", "config": {"case_sensitive": True, "keep_punctuation": True}},
    "contains": {"name": "contains", "kind": "includes", "config": {"case_sensitive": True}},
    "icontains": {"name": "icontains", "kind": "includes"},
    "is-json": {"name": "is-json", "kind": "python", "config": {"function": "graders.py:is_json", "binary": True}},
    "contains-json": {
        "name": "contains-json",
        "kind": "python",
        "config": {"function": "graders.py:contains_json", "binary": True},
    },
}
PF_HOW = {
    "equals": "exact_match, case- and punctuation-sensitive (white space is still collapsed; promptfoo compares "
    "the raw text)",
    "contains": "includes, case-sensitive (a whole-word match with punctuation ignored; promptfoo's is a raw "
    "substring)",
    "icontains": "includes (case-insensitive, whole words, punctuation ignored; promptfoo's is a raw substring)",
    "is-json": "python scorer graders.py:is_json (the whole answer parses as JSON)",
    "contains-json": "python scorer graders.py:contains_json (a JSON object or array appears in the answer)",
}
VALUE_TYPES = ("equals", "contains", "icontains")
PF_WHY = {
    "javascript": "harness runs no JavaScript; port the check to a `python` scorer (grade(answer, case))",
    "python": "promptfoo's Python assertion has another signature; port it to a `python` scorer (grade(answer, "
    "case)) in the suite's folder",
    "similar": "harness has no embedding-similarity scorer (token_f1, chrf or rouge_l compare text instead)",
    "cost": "harness reports cost per strategy and can guard it (decision.guards: per_request_usd), not per case",
    "latency": "harness reports latency percentiles per strategy and can guard them (decision.latency_slo_p95_s), "
    "not per case",
    "webhook": "harness calls no webhooks",
}
GRADERS = '''"""Grading functions `harness init --from-promptfoo` wrote for promptfoo assertions no built-in scorer checks."""

import json


def is_json(answer, case):
    """promptfoo is-json: the whole answer parses as JSON."""
    try:
        json.loads(answer)
    except ValueError:
        return 0
    return 1


def contains_json(answer, case):
    """promptfoo contains-json: a JSON object or array appears somewhere in the answer."""
    decoder = json.JSONDecoder()
    for start, char in enumerate(answer):
        if char in "{[":
            try:
                decoder.raw_decode(answer[start:])
            except ValueError:
                continue
            return 1
    return 0
'''
NO_TARGET = "(no expected value in the promptfoo test)"


@dataclass
class _Test:
    label: str  # where it came from: tests[3], tests.csv:5, ...
    vars: dict[str, Any]
    asserts: list[tuple[str, Any]]  # (where it is written, the assertion)
    description: str | None = None


def _file_ref(value: Any) -> str | None:
    return value[len("file://") :] if isinstance(value, str) and value.startswith("file://") else None


def _resolve(base: Path, rel: str, where: str, what: str) -> list[Path]:
    found = sorted(base.glob(rel)) if any(ch in rel for ch in "*?[") else [base / rel]
    missing = [p for p in found if not p.is_file()]
    if not found or missing:
        shown = missing[0] if missing else base / rel
        raise DataError(
            f"{where}: {what} file '{rel}' not found ({shown}). Fix: check the path (relative to the config)."
        )
    return found


def convert(directory: Path, config_path: Path, *, force: bool = False) -> tuple[Path, list[str]]:
    """See harness.commands.convert_tools.from_promptfoo."""
    if config_path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigError(
            f"--from-promptfoo {config_path}: unknown file type '{config_path.suffix or '(none)'}'. Fix: give "
            "promptfoo's YAML or JSON config (promptfooconfig.yaml); a .js or .ts config must be written out as YAML "
            "first."
        )
    raw, lines = load_yaml_with_lines(config_path)
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{config_path}:1: not a promptfoo config (a mapping with `prompts` and `tests` expected). Fix: give "
            "promptfoo's promptfooconfig.yaml."
        )
    check_directory(directory, force=force)
    conv = Conversion("promptfoo", "--from-promptfoo", config_path, inputs=[config_path])

    def where(loc: Loc) -> str:
        return f"{config_path}:{line_of(lines, loc) or '?'}: {_loc(loc)}"

    for key in ("prompts", "tests"):
        if not raw.get(key):
            raise ConfigError(
                f"{config_path}:1: no `{key}` in the promptfoo config. Fix: a config to convert needs its prompts and "
                "its test cases."
            )
    prompts = _pf_prompts(raw["prompts"], config_path, lines, conv)
    tests = _pf_tests(raw["tests"], config_path, lines, conv, where)
    tests = _with_default_test(tests, raw.get("defaultTest"), config_path.parent, conv)
    if not tests:
        raise ConfigError(
            f"{where(('tests',))}: no test case harness can read. Fix: give tests with vars (inline or CSV)."
        )
    _pf_settings_notes(raw, conv)
    rows, scorers, judge_rubric = _pf_cases(tests, conv)
    return _pf_write(directory, prompts, rows, scorers, judge_rubric, raw, conv)


def _loc(loc: Loc) -> str:
    return format_loc(loc)


def _pf_prompts(
    raw: Any, config_path: Path, lines: dict[Loc, int], conv: Conversion
) -> list[tuple[str, str, Template]]:
    """(label, where, template) of each prompt promptfoo would send; one that harness cannot send is noted."""
    base = config_path.parent
    entries: list[tuple[Loc, Any, str | None]] = []
    if isinstance(raw, dict):  # the older {file path: label} form
        entries = [(("prompts", k), k, str(v)) for k, v in raw.items()]
    else:
        for i, item in enumerate(raw if isinstance(raw, list) else [raw]):
            if isinstance(item, dict):
                entries.append((("prompts", i), item.get("raw", item.get("id")), item.get("label")))
            else:
                entries.append((("prompts", i), item, None))
    found: list[tuple[str, str, Template]] = []
    for loc, value, label in entries:
        line = line_of(lines, loc)
        shown = _loc(loc)
        ref = _file_ref(value)
        if not isinstance(value, str):
            conv.not_mapped(f"{shown}: not a prompt text or file:// path; skipped")
            continue
        if ref is None:
            template = parse_template(value, file=config_path, line=line, key=shown, engine="Nunjucks")
            found.append((label or shown, shown, template))
            continue
        for path in _resolve(
            base, ref.split(":")[0] if ref.count(":") == 1 else ref, f"{config_path}:{line}", "prompt"
        ):
            if path.suffix.lower() not in (".txt", ".md", ".j2", ".prompt", ""):
                conv.not_mapped(
                    f"{shown} ({path.name}): a {path.suffix} prompt (a script or a chat-message file) is not "
                    "converted; only text prompts are"
                )
                continue
            conv.inputs.append(path)
            text = path.read_text(encoding="utf-8").rstrip()  # the newline an editor leaves is no part of the prompt
            offset = 1
            for n, chunk in enumerate(re.split(r"\n-{3,}\n", text)):  # promptfoo's separator of prompts in one file
                key = f"{shown} ({path.name}" + (f" #{n + 1})" if n else ")")
                template = parse_template(chunk, file=path, line=offset, key=key, engine="Nunjucks", exact=True)
                found.append((label or f"{path.stem}{n + 1 if n else ''}", key, template))
                offset += chunk.count("\n") + 2
    if not found:
        raise ConfigError(
            f"{config_path}:{line_of(lines, ('prompts',)) or '?'}: prompts: none of them is a text prompt harness can "
            "send. Fix: add a text prompt (a string or a file://prompt.txt)."
        )
    return found


def _pf_tests(raw: Any, config_path: Path, lines: dict[Loc, int], conv: Conversion, where) -> list[_Test]:
    tests: list[_Test] = []
    for i, entry in enumerate(raw if isinstance(raw, list) else [raw]):
        loc: Loc = ("tests", i) if isinstance(raw, list) else ("tests",)
        ref = _file_ref(entry)
        if isinstance(entry, dict):
            tests.append(_test_from(entry, _loc(loc), conv))
        elif ref is not None:
            for path in _resolve(config_path.parent, ref, where(loc), "tests"):
                conv.inputs.append(path)
                tests += _tests_file(path, conv)
        else:
            conv.not_mapped(f"{_loc(loc)}: not a test case or a file:// path (e.g. a huggingface:// dataset); skipped")
    return tests


def _test_from(entry: dict[str, Any], label: str, conv: Conversion) -> _Test:
    for key in ("options", "threshold", "providers", "provider", "providerOutput"):
        if key in entry:
            conv.not_mapped(f"{label}.{key}: harness has no per-case {key}; ignored")
    asserts = entry.get("assert") or []
    asserts = asserts if isinstance(asserts, list) else [asserts]
    variables = entry.get("vars") or {}
    if not isinstance(variables, dict):
        conv.not_mapped(f"{label}.vars: not a mapping of vars (a file of vars is not read); ignored")
        variables = {}
    return _Test(
        label,
        dict(variables),
        [(f"{label} assert[{j}]", a) for j, a in enumerate(asserts)],
        entry.get("description"),
    )


def _tests_file(path: Path, conv: Conversion) -> list[_Test]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [_csv_test(row, path, conv) for row in read_records(path)]
    if suffix in (".yaml", ".yml", ".json"):
        data, _ = load_yaml_with_lines(path)
        items = data if isinstance(data, list) else [data]
    elif suffix == ".jsonl":
        items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raise ConfigError(
            f"{path}: tests in a '{suffix}' file are not converted. Fix: give the tests as CSV, YAML, JSON or JSONL "
            "(a .js or .py test generator must be run and its output saved first)."
        )
    return [_test_from(t, f"{path.name} tests[{i}]", conv) for i, t in enumerate(items) if isinstance(t, dict)]


def _csv_test(row: dict[str, Any], path: Path, conv: Conversion) -> _Test:
    label = f"{path.name}:{row.get('__line__', '?')}"
    test = _Test(label, {}, [])
    for key, value in row.items():
        if key == "__line__":
            continue
        text = "" if value is None else str(value)
        if key.startswith("__expected"):
            if text.strip():
                test.asserts.append((f"{label} {key}", assertion_from_string(text)))
        elif key == "__description":
            test.description = text
        elif key.startswith("__"):
            if text.strip():
                conv.not_mapped(f"{label}: column {key} has no harness equivalent; ignored")
        else:
            test.vars[key] = text
    return test


def assertion_from_string(text: str) -> dict[str, Any]:
    """A CSV `__expected` cell as promptfoo reads it: `type:value`, `type`, `grade:`/`fn:` forms, else equals."""
    for prefixes, kind in (
        (("javascript:", "fn:", "eval:"), "javascript"),
        (("grade:", "llm-rubric:"), "llm-rubric"),
        (("python:",), "python"),
    ):
        for prefix in prefixes:
            if text.startswith(prefix):
                return {"type": kind, "value": text[len(prefix) :].strip()}
    m = re.fullmatch(r"(not-)?([a-z][a-z0-9-]*)(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?", text)
    if m and m.group(2) in PF_ASSERTION_TYPES:
        value = m.group(4).strip() if m.group(4) is not None else None
        return {"type": (m.group(1) or "") + m.group(2), "value": value}
    return {"type": "equals", "value": text}


def _with_default_test(tests: list[_Test], default: Any, base: Path, conv: Conversion) -> list[_Test]:
    """defaultTest's vars under each test's, its assertions after each test's; array vars expanded as promptfoo does
    (one test per combination), and a var's file:// text file read in."""
    if _file_ref(default) is not None:
        conv.not_mapped(f"defaultTest: {default}: a defaultTest kept in another file is not read; convert it inline")
    default = default if isinstance(default, dict) else {}
    if default.get("options"):
        conv.not_mapped("defaultTest.options: harness has no per-case options (prefix, suffix, transform); ignored")
    base_vars = dict(default.get("vars") or {})
    base_asserts = [(f"defaultTest.assert[{j}]", a) for j, a in enumerate(default.get("assert") or [])]
    out = []
    for test in tests:
        merged = {k: _var_value(v, base, f"{test.label}.vars.{k}", conv) for k, v in {**base_vars, **test.vars}.items()}
        names = [k for k, v in merged.items() if isinstance(v, list)]
        for combo in itertools.product(*(merged[k] for k in names)) if names else [()]:
            values = {**merged, **dict(zip(names, combo, strict=True))}
            label = test.label + (
                f" ({', '.join(f'{k}={v}' for k, v in zip(names, combo, strict=True))})" if names else ""
            )
            asserts = [(where, _value_file(item, base, where, conv)) for where, item in [*test.asserts, *base_asserts]]
            out.append(_Test(label, values, asserts, test.description))
    return out


def _value_file(item: Any, base: Path, where: str, conv: Conversion) -> Any:
    """An assertion whose `value: file://...` names a text file, with the file's text as its value (as promptfoo
    reads it)."""
    if isinstance(item, dict) and _file_ref(item.get("value")) is not None and item.get("type") in VALUE_TYPES:
        return {**item, "value": _var_value(item["value"], base, f"{where}.value", conv)}
    return item


def _var_value(value: Any, base: Path, where: str, conv: Conversion) -> Any:
    ref = _file_ref(value)
    if ref is None:
        return value
    path = base / ref
    if path.is_file() and path.suffix.lower() in (".txt", ".md", ".json", ".yaml", ".yml", ".csv", ""):
        conv.inputs.append(path)
        return path.read_text(encoding="utf-8")
    conv.not_mapped(f"{where}: {value} is not a text file harness can read in; the path is kept as the value")
    return value


def _pf_settings_notes(raw: dict[str, Any], conv: Conversion) -> None:
    providers = raw.get("providers") or raw.get("targets")
    if providers:
        names = [
            p if isinstance(p, str) else str(p.get("id", p)) if isinstance(p, dict) else str(p)
            for p in (providers if isinstance(providers, list) else [providers])
        ]
        conv.not_mapped(
            f"providers ({', '.join(names)}): not converted; the suite answers with the local backend. Fix: add "
            "backends of your own (kind: openai for OpenAI-compatible APIs) and point strategies at them"
        )
    for key in ("scenarios", "nunjucksFilters", "derivedMetrics"):
        if raw.get(key):
            conv.not_mapped(f"{key}: no harness equivalent; ignored")


def _render_value(value: Any, test: _Test, where: str) -> Any:
    """An assertion value with the test's vars put in, as promptfoo renders it."""
    if not (isinstance(value, str) and "{{" in value):
        return value
    template = parse_template(value, file=Path(test.label), line=None, key=where, engine="Nunjucks")
    return template.render(test.vars)


def _pf_cases(tests: list[_Test], conv: Conversion) -> tuple[list[tuple[_Test, str]], list[dict[str, Any]], str | None]:
    """The tests kept (each with its target), the scorers their assertions map onto, and the llm-rubric rubric."""
    kept: list[tuple[_Test, str | None]] = []
    used: set[str] = set()
    patterns: dict[str, list[str]] = {}
    rubrics: dict[str, list[str]] = {}
    for test in tests:
        target, origin = None, ""
        for where, item in test.asserts:
            if not isinstance(item, dict) or "type" not in item:
                conv.not_mapped(f"{where}: not an assertion with a `type`; skipped")
                continue
            kind = str(item["type"])
            where += f" ({kind})"
            for key in ("threshold", "weight", "metric", "transform", "provider", "rubricPrompt"):
                if key in item:
                    conv.not_mapped(f"{where}: `{key}` has no harness equivalent; ignored")
            try:
                value = _render_value(item.get("value"), test, where)
            except (ConfigError, LookupError, TypeError):
                conv.not_mapped(f"{where}: its value uses a template harness cannot fill; skipped")
                continue
            if kind in VALUE_TYPES:
                if value is None:
                    conv.not_mapped(f"{where}: no `value` to expect; skipped")
                    continue
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                if target is None or text == target:
                    target, origin = text, origin or kind
                    used.add(kind)
                else:
                    conv.not_mapped(
                        f"{where}: its value {text!r} differs from the case's target {target!r} (from {origin}); a "
                        "harness case has one target"
                    )
            elif kind == "regex" and value is None:
                conv.not_mapped(f"{where}: no pattern; skipped")
            elif kind == "regex":
                patterns.setdefault(str(value), []).append(where)
            elif kind in ("is-json", "contains-json"):
                used.add(kind)
                if value:
                    conv.not_mapped(f"{where}: its JSON schema is not checked, only that the answer holds JSON")
            elif kind == "llm-rubric":
                rubrics.setdefault(str(value), []).append(where)
            elif kind.startswith("not-"):
                conv.not_mapped(f"{where}: harness scorers have no negated form")
            else:
                conv.not_mapped(f"{where}: {PF_WHY.get(kind, 'no harness scorer does this check')}")
        kept.append((test, target))
    scorers = [dict(PF_SCORERS[k]) for k in ("equals", "contains", "icontains") if k in used]
    scorers += _single("regex", patterns, conv)
    scorers += [dict(PF_SCORERS[k]) for k in ("is-json", "contains-json") if k in used]
    rubric = next(iter(rubrics)) if len(rubrics) == 1 else None
    if len(rubrics) > 1:
        _single("llm-rubric", rubrics, conv)
    return _targets(kept, conv), scorers, rubric


def _single(kind: str, values: dict[str, list[str]], conv: Conversion) -> list[dict[str, Any]]:
    """A regex (or rubric) scorer when every test that has one has the same; else each is noted as not mapped."""
    if len(values) > 1:
        for places in values.values():
            for where in places:
                conv.not_mapped(
                    f"{where}: the tests use {len(values)} different {kind} values, and harness's scorer takes one "
                    "for the whole suite"
                )
        return []
    if kind != "regex" or not values:
        return []
    pattern = next(iter(values))
    try:
        re.compile(pattern)
    except re.error as exc:
        for where in values[pattern]:
            conv.not_mapped(f"{where}: {pattern!r} is not a Python regular expression ({exc})")
        return []
    return [{"name": "regex", "kind": "regex", "config": {"pattern": pattern}}]


def _targets(kept: list[tuple[_Test, str | None]], conv: Conversion) -> list[tuple[_Test, str]]:
    """Tests without an expected value are left out when others have one (a case needs a target); when none has,
    all are kept with a placeholder target that only target-free scorers (regex, is-json, llm-rubric) ignore."""
    if all(target is None for _, target in kept):
        conv.differences.append(
            f"No test has an equals/contains/icontains value, so every case's target is the placeholder {NO_TARGET!r}: "
            "fill in the expected answers in data/test.jsonl before using target-based scorers."
        )
        return [(test, NO_TARGET) for test, _ in kept]
    out = []
    for test, target in kept:
        if target is None:
            conv.not_mapped(
                f"{test.label}: no equals, contains or icontains value to take the expected answer from; left out "
                "(a harness case needs a target)"
            )
        else:
            out.append((test, target))
    return out


def _pf_write(
    directory: Path,
    prompts: list[tuple[str, str, Template]],
    kept: list[tuple[_Test, str]],
    scorers: list[dict[str, Any]],
    rubric: str | None,
    raw: dict[str, Any],
    conv: Conversion,
) -> tuple[Path, list[str]]:
    envelope, backend = default_backend(directory, max_new_tokens=256)
    local = backend["name"]
    names = sorted({k for test, _ in kept for k in test.vars})
    taken = set(names)
    target_field = free_name(("target", "expected", "promptfoo_target"), taken)
    id_field = free_name(("id", "case_id", "test_id"), taken | {target_field})
    described = any(test.description for test, _ in kept)
    about = free_name(("description", "test_description"), taken | {target_field, id_field}) if described else None
    rows = []
    for n, (test, target) in enumerate(kept, start=1):
        row: dict[str, Any] = {id_field: f"test-{n}", **{k: jsonable(test.vars.get(k, "")) for k in names}}
        for _, _, template in prompts:
            for ref in template.refs:
                if len(ref.path) > 1:  # a value inside a var (`{{ item.name }}`): a field of its own
                    try:
                        row[ref.field] = jsonable(ref.lookup(test.vars))
                    except (LookupError, TypeError):
                        row[ref.field] = ""  # promptfoo renders what is not there as empty
                elif ref.field not in row:
                    row[ref.field] = ""
        row[target_field] = target
        if about:
            row[about] = test.description or ""
        rows.append(row)
    for _, key, template in prompts:
        for ref in template.refs:
            if ref.path[0] not in taken:
                conv.not_mapped(f"{key}: {{{{{ref.text}}}}} is set by no test; rendered empty, as promptfoo does")
    first = prompts[0][2]
    used_names: set[str] = {"zero_shot"}
    strategies: list[dict[str, Any]] = [{"name": "zero_shot", "kind": "zero_shot", "backend": local}]
    conv.mapped.append((f"{prompts[0][1]} (the first prompt)", "task.prompt_template, answered by strategy zero_shot"))
    for label, key, template in prompts[1:]:
        name = strategy_name(label, used_names)
        strategies.append({"name": name, "kind": "zero_shot", "backend": local, "prompt_template": template.python()})
        conv.mapped.append((key, f"strategy {name}: zero_shot with its own prompt_template"))
    conv.mapped.append((f"tests ({len(kept)} kept)", f"data/test.jsonl; vars -> fields {', '.join(names) or '(none)'}"))
    if any(s["name"] in VALUE_TYPES for s in scorers):
        conv.mapped.append(("equals / contains / icontains values", f"each case's target (field `{target_field}`)"))
    for scorer in scorers:
        how = PF_HOW.get(scorer["name"], "regex, matched anywhere in the answer")
        conv.mapped.append((scorer["name"], f"scorer {scorer['name']}: {how}"))
    if rubric is not None:
        scorers.append(
            {
                "name": "llm-rubric",
                "kind": "model_graded",
                "config": {"judge": local, "rubric": rubric, "scale": [0, 1], "reference": False},
            }
        )
        conv.mapped.append(
            ("llm-rubric", f"scorer llm-rubric: model_graded, pass (1) or fail (0), judged by backend {local}")
        )
        conv.differences.append(
            f"llm-rubric is judged by the suite's backend '{local}' (a small local model): name a stronger judge "
            "backend in scorers[].config.judge before trusting the grades."
        )
    if not scorers:
        scorers = [{"kind": "exact_match"}]
        conv.not_mapped(
            "no assertion maps onto a harness scorer: the suite scores exact_match against the target as a "
            "placeholder. Fix: choose a scorer (`harness list`) and fill in the targets"
        )
    conv.differences += [
        "harness applies every scorer to every case; promptfoo applies an assertion only to the tests that list it.",
        "promptfoo has no train split: every case is a test case. Add data/train.jsonl (and dev) to compare few-shot, "
        "RAG or fine-tuning strategies.",
        "The prompt is sent as the user message with no system instructions, as promptfoo sends it.",
    ]
    suite = {
        **envelope,
        "description": str(raw.get("description") or f"Converted from the promptfoo config {conv.source.name}."),
        "task": {
            "instructions": "",
            "input_field": first.refs[0].field if first.refs else (names[0] if names else target_field),
            "target_field": target_field,
            "id_field": id_field,
            "prompt_template": first.python(),
        },
        "data": {"test": "data/test.jsonl"},
        "backends": [backend],
        "strategies": strategies,
        "scorers": scorers,
    }
    graders = {"graders.py": GRADERS} if any(s["kind"] == "python" for s in scorers) else None
    path = write_suite(directory, suite, {"test": rows}, conv, extra_files=graders)
    return path, conv.unmapped
