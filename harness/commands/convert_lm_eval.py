"""`harness init --from-lm-eval`: an lm-eval task file (its templates, splits, few-shot count, generation settings
and metrics) over local data files turned into a suite; what does not map is listed in the README and the output."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.commands.convert_lm_eval_metrics import generation_settings, scorers_for
from harness.commands.convert_tools import (
    Conversion,
    FunctionRef,
    Ref,
    Template,
    check_directory,
    default_backend,
    free_name,
    jsonable,
    parse_template,
    read_yaml_with_functions,
    write_suite,
)
from harness.errors import ConfigError, DataError
from harness.scoring.normalise import normalise
from harness.suite.data import read_records
from harness.suite.locations import Loc, format_loc, line_of

FUNCTION_FIX = (
    "harness does not run a task's Python functions. Fix: apply the function to the data files once and point the "
    "task at the result with a plain template, or write the suite by hand (`harness schema`)"
)
SUFFIXES = {"json": (".json", ".jsonl", ".ndjson"), "csv": (".csv",), "parquet": (".parquet", ".pq")}


@dataclass
class _Task:
    path: Path
    data: dict[str, Any]
    origin: dict[str, tuple[Path, dict[Loc, int], dict[Loc, int]]]  # key -> (its file, key lines, block starts)
    parsed: dict[str, Template] = field(default_factory=dict)

    def where(self, *loc: str | int) -> str:
        path, lines, _ = self.origin.get(str(loc[0]), self.origin[""])
        return f"{path}:{line_of(lines, loc) or '?'}: {format_loc(loc)}"

    def template(self, key: str, fields: set[str]) -> Template:
        """The key's value as a template: a field's name stands for `{{ field }}`, as lm-eval reads it."""
        if key not in self.parsed:
            value = self.data[key]
            path, lines, blocks = self.origin.get(key, self.origin[""])
            block = blocks.get((key,))  # a `|` block: the line of each tag can be told
            if isinstance(value, str) and value in fields and "{" not in value:
                self.parsed[key] = Template([Ref((value,), value)])
            else:
                line = block or line_of(lines, (key,))
                self.parsed[key] = parse_template(str(value), file=path, line=line, key=key, exact=block is not None)
        return self.parsed[key]


def _load_task(path: Path, seen: tuple[Path, ...] = ()) -> _Task:
    """The task file, with any `include`d base task under it (its keys overridden by the including file's)."""
    data, lines, blocks = read_yaml_with_functions(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}:1: not an lm-eval task (a mapping with `task`, `doc_to_text`, ... expected). Fix: give the "
            "task's YAML file."
        )
    own = dict.fromkeys(data, (path, lines, blocks))
    include = data.pop("include", None)
    if include is None:
        return _Task(path, data, {**own, "": (path, lines, blocks)})
    base = path.parent / str(include)
    if not isinstance(include, str) or base.resolve() in seen:
        raise ConfigError(
            f"{path}:{lines.get(('include',), '?')}: include: not the path of another task file, or a loop of "
            "includes. Fix: name the base task's YAML file, relative to this one."
        )
    parent = _load_task(base, (*seen, path.resolve()))
    return _Task(path, {**parent.data, **data}, {**parent.origin, **own, "": (path, lines, blocks)})


def _check_functions(task: _Task, conv: Conversion) -> None:
    """A `!function` that makes the prompts or the data is refused; one that scores or filters is noted."""
    for key, value in task.data.items():
        if isinstance(value, FunctionRef):
            if key in ("doc_to_text", "doc_to_target", "doc_to_choice", "process_docs", "custom_dataset"):
                raise ConfigError(f"{task.where(key)}: is a Python function (!function {value}); {FUNCTION_FIX}.")
            conv.not_mapped(f"{key} (!function {value}): harness runs no task code; ignored")
    for i, metric in enumerate(task.data.get("metric_list") or []):
        if isinstance(metric, dict) and isinstance(metric.get("metric"), FunctionRef):
            conv.not_mapped(f"metric_list[{i}] (!function {metric['metric']}): harness runs no task code")


def convert(directory: Path, task_path: Path, *, force: bool = False) -> tuple[Path, list[str]]:
    """See harness.commands.convert_tools.from_lm_eval."""
    if task_path.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(
            f"--from-lm-eval {task_path}: unknown file type '{task_path.suffix or '(none)'}'. Fix: give an lm-eval "
            "task YAML file (the one with `task:`, `dataset_path:` and `doc_to_text:`)."
        )
    task = _load_task(task_path)
    check_directory(directory, force=force)
    conv = Conversion(
        "lm-eval", "--from-lm-eval", task_path, inputs=list(dict.fromkeys(o[0] for o in task.origin.values()))
    )
    _check_functions(task, conv)
    output_type = str(task.data.get("output_type", "generate_until"))
    if output_type not in ("generate_until", "multiple_choice"):
        raise ConfigError(
            f"{task.where('output_type')}: '{output_type}' tasks score log-likelihoods, and harness compares "
            "generated answers. Fix: convert a generate_until or multiple_choice task."
        )
    for key in ("doc_to_text", "doc_to_target") + (("doc_to_choice",) if output_type == "multiple_choice" else ()):
        if task.data.get(key) is None:
            raise ConfigError(f"{task.path}:1: no `{key}`. Fix: add it (see lm-eval's task guide).")
    for key in ("doc_to_text", "doc_to_target", "doc_to_choice", "description"):
        if isinstance(task.data.get(key), str):
            _Task(task.path, task.data, task.origin).template(key, set())  # a template's fault before the data's
    splits = _splits(task, _data_files(task, conv), conv)
    return _build(directory, task, splits, output_type, conv)


def _data_files(task: _Task, conv: Conversion) -> dict[str, list[dict[str, Any]]]:
    """The rows of each split named in dataset_kwargs.data_files (each with `__at__`, its file:line)."""
    kind = task.data.get("dataset_path")
    if not kind:
        raise ConfigError(
            f"{task.path}:1: dataset_path: missing. Fix: name the hub dataset, or set `dataset_path: json` (or csv, "
            "parquet) with `dataset_kwargs: {data_files: {test: data/test.jsonl, ...}}`."
        )
    if kind not in SUFFIXES:
        return _hub_rows(task, str(kind), conv)
    kwargs = task.data.get("dataset_kwargs") or {}
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    if not files:
        raise ConfigError(
            f"{task.where('dataset_kwargs') if 'dataset_kwargs' in task.data else task.where('dataset_path')}: no "
            "dataset_kwargs.data_files naming the local files. Fix: add `dataset_kwargs: {data_files: {test: "
            "data/test.jsonl}}` (and train/validation files)."
        )
    for key in (k for k in kwargs if k != "data_files"):
        conv.not_mapped(f"dataset_kwargs.{key}: not used when reading the files")
    if task.data.get("dataset_name"):
        conv.not_mapped(f"dataset_name '{task.data['dataset_name']}': no meaning for local files; ignored")
    if not isinstance(files, dict):
        files = {"train": files}  # one file or a list: the datasets library calls it the train split
    base = task.origin.get("dataset_kwargs", task.origin[""])[0].parent
    out: dict[str, list[dict[str, Any]]] = {}
    for split, value in files.items():
        out[split] = []
        for rel in value if isinstance(value, list) else [value]:
            path = next((p for p in (base / str(rel), Path.cwd() / str(rel)) if p.is_file()), None)
            if path is None:
                raise DataError(
                    f"{task.where('dataset_kwargs', 'data_files', split)}: data file '{rel}' not found (looked in "
                    f"{base} and {Path.cwd()}). Fix: check the path; it is read relative to the task file."
                )
            conv.inputs.append(path)
            out[split] += _read_rows(path, str(kind))
    return out


def _hub_rows(task: _Task, name: str, conv: Conversion) -> dict[str, list[dict[str, Any]]]:
    """The rows of each split of a Hugging Face dataset (hub id, or a folder next to the task file), read through
    `datasets` as lm-eval reads them (HF_HUB_OFFLINE obeyed); written into the suite's data/ like local files."""
    from harness.suite.hf_data import open_dataset
    from harness.suite.schema import HFDataSpec

    kwargs = task.data.get("dataset_kwargs") or {}
    revision = kwargs.get("revision") if isinstance(kwargs, dict) else None
    spec = HFDataSpec(path=name, name=task.data.get("dataset_name"), revision=revision)
    try:
        splits, fingerprint = open_dataset(spec, task.path.parent, lambda loc: task.where("dataset_path"))
    except DataError as exc:
        raise DataError(
            f"{exc} Or save the splits as JSONL files and point the task at them (`dataset_path: json`, "
            "`dataset_kwargs: {data_files: {test: ...}}`)."
        ) from None
    for key in (k for k in kwargs if k != "revision"):
        conv.not_mapped(f"dataset_kwargs.{key}: not passed to the datasets library")
    conv.differences.append(
        f"The docs were read from the Hugging Face dataset {name}"
        + (f" ({spec.name})" if spec.name else "")
        + (f" at revision {revision}" if revision else " (no revision pinned: a later conversion may read other rows)")
        + f" and written into data/ (datasets fingerprint {fingerprint[:80]})."
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for split, dataset in splits.items():
        out[split] = dataset.to_list()
        for i, row in enumerate(out[split], start=1):
            row["__at__"] = f"{name}[{split}]:{i}"
    return out


def _read_rows(path: Path, kind: str) -> list[dict[str, Any]]:
    """The file's rows, each with `__at__` (file:line) for messages."""
    if path.suffix.lower() not in SUFFIXES[kind]:
        raise ConfigError(
            f"{path}: a '{path.suffix}' file under dataset_path: {kind}. Fix: give {kind} files "
            f"({', '.join(SUFFIXES[kind])}), or set dataset_path to the files' format."
        )
    if path.suffix.lower() == ".json" and path.read_text(encoding="utf-8-sig").lstrip().startswith("["):
        rows = [r for r in json.loads(path.read_text(encoding="utf-8-sig")) if isinstance(r, dict)]
    else:
        rows = read_records(path)
    for i, row in enumerate(rows, start=1):
        row["__at__"] = f"{path}:{row.pop('__line__', None) or i}"
    return rows


def _splits(task: _Task, data: dict[str, list[dict[str, Any]]], conv: Conversion) -> dict[str, tuple[str, list]]:
    """harness split -> (lm-eval split, rows): test from test_split (else validation_split), dev from
    validation_split, train from fewshot_split (else training_split): harness's few-shot draws from train."""
    d = task.data
    test = d.get("test_split") or d.get("validation_split")
    if not test:
        raise ConfigError(f"{task.path}:1: no test_split or validation_split to evaluate on. Fix: name one.")
    dev = d.get("validation_split") if d.get("test_split") and d.get("validation_split") != test else None
    train = d.get("fewshot_split") or d.get("training_split")
    if d.get("fewshot_split") and d.get("training_split") and d["fewshot_split"] != d["training_split"]:
        conv.not_mapped(
            f"training_split '{d['training_split']}': not used; harness's train split holds fewshot_split "
            f"'{d['fewshot_split']}', the exemplars lm-eval draws"
        )
    if train and train == test:
        conv.not_mapped(f"fewshot_split '{train}' is the test split: harness draws exemplars only from other cases")
        train = None
    if train and train == dev:
        dev = None
    chosen: dict[str, tuple[str, list]] = {}
    for ours, theirs, key in (
        ("train", train, "fewshot_split"),
        ("dev", dev, "validation_split"),
        ("test", test, "test_split"),
    ):
        if not theirs:
            continue
        if theirs not in data:
            key = (
                key
                if key in d
                else next(k for k in ("training_split", "test_split", "validation_split") if d.get(k) == theirs)
            )
            raise DataError(
                f"{task.where(key)}: split '{theirs}' is not in dataset_kwargs.data_files ({', '.join(data)}). Fix: "
                "name one of those splits, or add its file."
            )
        chosen[ours] = (str(theirs), data[theirs])
    if not chosen["test"][1]:
        raise DataError(
            f"{task.where('test_split' if d.get('test_split') else 'validation_split')}: the split is empty. Fix: "
            "give it a data file with the test docs."
        )
    return chosen


# Keys the conversion reads (or knowingly passes over); any other key of the task is listed as not mapped.
_KEY_NAMES = (
    "task task_alias tag group metadata dataset_path dataset_name dataset_kwargs training_split validation_split "
    "test_split fewshot_split num_fewshot output_type doc_to_text doc_to_target doc_to_choice target_delimiter "
    "fewshot_delimiter description generation_kwargs metric_list filter_list"
)
KNOWN_KEYS = frozenset(_KEY_NAMES.split())


def _at(row: dict[str, Any]) -> str:
    return str(row.get("__at__", "?"))


def _get(fn, key: str, row: dict[str, Any]) -> Any:
    try:
        return fn()
    except LookupError as exc:
        raise DataError(
            f"{_at(row)}: {key}: '{{{{ {exc.args[0] if exc.args else '?'} }}}}' finds nothing in this row (fields: "
            f"{', '.join(sorted(k for k in row if not k.startswith('__')))}). Fix: correct the template or the data."
        ) from None


def _as_list(value: Any) -> Any:
    """A rendered '[...]' read back as a list, as lm-eval does."""
    if isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]"):
        try:
            return ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            return value
    return value


def _choice_target(task: _Task, doc: dict[str, Any], row: dict[str, Any], conv: Conversion) -> tuple[str, list[str]]:
    """(the right choice's text, the choices) of a multiple_choice doc."""
    spec = task.data["doc_to_choice"]
    fields = set(doc)
    choices = (
        spec
        if isinstance(spec, list)
        else _as_list(_get(lambda: task.template("doc_to_choice", fields).value(doc), "doc_to_choice", row))
    )
    if not isinstance(choices, list | tuple) or len(choices) < 2:
        raise DataError(
            f"{_at(row)}: doc_to_choice gives {str(choices)[:80]!r}, not a list of choices. Fix: correct it."
        )
    texts = [str(c) for c in choices]
    spec_t = task.data["doc_to_target"]
    gold = (
        spec_t
        if isinstance(spec_t, int)
        else _as_list(_get(lambda: task.template("doc_to_target", fields).value(doc), "doc_to_target", row))
    )
    if isinstance(gold, list):
        conv.not_mapped("doc_to_target gives several right choices for some docs: the first is the target")
        gold = gold[0] if gold else ""
    if isinstance(gold, str) and gold.strip().isdigit():
        gold = int(gold.strip())  # lm-eval reads a rendered number as the choice's index
    if isinstance(gold, int) and not isinstance(gold, bool):
        if not 0 <= gold < len(texts):
            raise DataError(
                f"{_at(row)}: doc_to_target {gold} is no index into the {len(texts)} choices. Fix: correct it."
            )
        return texts[gold], texts
    if str(gold) in texts:
        return str(gold), texts
    raise DataError(
        f"{_at(row)}: doc_to_target gives {gold!r}, neither an index into nor one of the choices {texts}. Fix: correct it."
    )


def _answer_target(task: _Task, doc: dict[str, Any], row: dict[str, Any]) -> tuple[str, list[str]]:
    """(the target, further acceptable answers) of a generate_until doc."""
    spec = task.data["doc_to_target"]
    value = (
        spec
        if isinstance(spec, int)
        else _as_list(_get(lambda: task.template("doc_to_target", set(doc)).value(doc), "doc_to_target", row))
    )
    golds = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if not golds or not golds[0].strip():
        raise DataError(f"{_at(row)}: doc_to_target renders empty: a case needs an expected answer. Fix: fill it in.")
    return golds[0], golds[1:]


def _build(
    directory: Path, task: _Task, splits: dict[str, tuple[str, list]], output_type: str, conv: Conversion
) -> tuple[Path, list[str]]:
    mc, d = output_type == "multiple_choice", task.data
    fields = set().union(*(set(r) for _, rows in splits.values() for r in rows)) - {"__at__"}
    text = task.template("doc_to_text", fields)
    description = task.template("description", fields) if d.get("description") else None
    # a description that names fields goes before each question; a fixed one is the system instructions
    prompt = Template([*description.parts, *text.parts]) if description and description.refs else text
    instructions = description.render({}).strip() if description and not description.refs else ""
    names = _Names(
        target := free_name(("target", "lm_eval_target"), fields),
        ident := free_name(("id", "doc_id", "case_id"), fields | {target}),
        free_name(("references", "lm_eval_references"), fields | {target, ident}),
    )
    out, choice_sets, longest = _rows(task, splits, prompt, mc, names, conv)
    labels = _labels(choice_sets, conv) if mc else None
    conv.mapped += [
        ("task", f"suite description ({d.get('task', task.path.stem)})"),
        (
            f"dataset_path {d['dataset_path']}, data_files",
            ", ".join(f"data/{s}.jsonl: {theirs} split, {len(out[s])} docs" for s, (theirs, _) in splits.items()),
        ),
        ("description", "task.instructions" if instructions else "the start of task.prompt_template")
        if description
        else ("description (none)", "no instructions"),
        ("doc_to_text", "task.prompt_template (Python braces)"),
        ("doc_to_target", f"field `{target}` of each case" + (", the right choice's text" if mc else "")),
    ]
    if mc:
        conv.mapped.append(
            ("doc_to_choice", f"task.labels: {', '.join(labels)}" if labels else "no label set (the choices vary)")
        )
        instructions = (instructions + " " if instructions else "") + (
            "Answer with exactly one of: {labels}." if labels else "Answer with the text of the right choice."
        )
        conv.differences.append(
            "lm-eval scores multiple_choice by the log-likelihood of each choice; harness generates an answer and "
            "checks it is the right choice (label_accuracy), with an instruction added to name one. Scores are not "
            "comparable with lm-eval's."
        )
    odd = sorted(
        {
            ref.field
            for ref in prompt.refs
            for rows in out.values()
            for r in rows
            if r.get(ref.field) is None or isinstance(r.get(ref.field), list | dict)
        }
    )
    if odd:  # harness fills a template with JSON for lists and empty text for None; Jinja writes Python's repr
        conv.differences.append(
            f"Fields {', '.join(odd)} hold lists, mappings or nulls in some docs: harness writes them into the prompt "
            "as JSON ([\"a\", \"b\"]) and a null as empty text, where lm-eval's Jinja writes ['a', 'b'] and None."
        )
    has_refs = any(names.references in r for rows in out.values() for r in rows)
    if has_refs:
        conv.mapped.append(
            ("doc_to_target (a list of answers)", f"the first is the target; all in `{names.references}`")
        )
    scorers = scorers_for(task, mc, conv, names.references if has_refs else None)
    generation = generation_settings(task, mc, min(256, 2 * longest + 8), conv)
    spec = {
        "instructions": instructions,
        "input_field": prompt.refs[0].field if prompt.refs else target,
        "target_field": target,
        "id_field": ident,
        "prompt_template": prompt.python(),
        **({"labels": labels} if labels else {}),
    }
    return _write(directory, task, out, spec, scorers, generation, conv)


@dataclass(frozen=True)
class _Names:
    """The fields the conversion adds to each row (named apart from the data's own)."""

    target: str
    id: str
    references: str


def _rows(
    task: _Task, splits: dict[str, tuple[str, list]], prompt: Template, mc: bool, names: _Names, conv: Conversion
) -> tuple[dict[str, list[dict[str, Any]]], set[tuple[str, ...]], int]:
    """Each split's rows as written: the original fields, nested values the prompt names, the target, an id; and
    the choice lists seen and the longest choice (in words)."""
    out: dict[str, list[dict[str, Any]]] = {}
    choice_sets: set[tuple[str, ...]] = set()
    longest = 1
    for ours, (_, rows) in splits.items():
        out[ours] = []
        for n, row in enumerate(rows, start=1):
            doc = {k: v for k, v in row.items() if not k.startswith("__")}
            _get(lambda d=doc: prompt.render(d), "doc_to_text", row)  # every field the prompt names is there
            new = {names.id: f"{ours}-{n}", **{k: jsonable(v) for k, v in doc.items()}}
            new.update({ref.field: jsonable(ref.lookup(doc)) for ref in prompt.refs if len(ref.path) > 1})
            if mc:
                new[names.target], choices = _choice_target(task, doc, row, conv)
                choice_sets.add(tuple(choices))
                longest = max(longest, *(len(c.split()) for c in choices))
            else:
                new[names.target], more = _answer_target(task, doc, row)
                if more:
                    new[names.references] = more
            out[ours].append(new)
    return out, choice_sets, longest


def _labels(choice_sets: set[tuple[str, ...]], conv: Conversion) -> list[str] | None:
    """The choices as task.labels when every doc has the same ones (and they differ once normalised)."""
    if len(choice_sets) != 1:
        conv.differences.append(
            "The choices differ from doc to doc, so the suite has no label set: the prompt (doc_to_text) must show "
            "them, and an answer scores when it is the right choice's text."
        )
        return None
    choices = list(next(iter(choice_sets)))
    if len({normalise(c) for c in choices}) != len(choices) or not all(normalise(c) for c in choices):
        conv.not_mapped(f"doc_to_choice {choices}: the same once case and punctuation are ignored; no label set")
        return None
    return choices


def _write(
    directory: Path,
    task: _Task,
    out: dict[str, list[dict[str, Any]]],
    spec: dict[str, Any],
    scorers: list[dict[str, Any]],
    generation: dict[str, Any],
    conv: Conversion,
) -> tuple[Path, list[str]]:
    d = task.data
    envelope, backend = default_backend(directory, max_new_tokens=generation["max_new_tokens"])
    backend["generation"] = {**backend["generation"], **generation}
    strategies: list[dict[str, Any]] = [{"name": "zero_shot", "kind": "zero_shot", "backend": backend["name"]}]
    shots, train = int(d.get("num_fewshot") or 0), out.get("train", [])
    if shots > 0 and train:
        k = min(shots, len(train))
        strategies.append(
            {
                "name": "few_shot",
                "kind": "few_shot",
                "backend": backend["name"],
                "config": {"k": k, "selection": "random"},
            }
        )
        conv.mapped.append((f"num_fewshot {shots}", f"strategy few_shot: k {k}, drawn at random from the train split"))
        if k < shots:
            conv.not_mapped(f"num_fewshot {shots}: the train split has {len(train)} docs; k is {k}")
    elif shots > 0:
        conv.not_mapped(f"num_fewshot {shots}: no split to draw exemplars from; zero-shot only")
    for key in ("target_delimiter", "fewshot_delimiter"):
        if key in d:
            conv.not_mapped(f"{key} {d[key]!r}: exemplars are chat turns (question, then answer), not joined text")
    for key in d:
        if key not in KNOWN_KEYS and not isinstance(d[key], FunctionRef):
            conv.not_mapped(f"{key}: not converted")
    files = {split: f"data/{split}.jsonl" for split, rows in out.items() if rows}
    suite = {
        **envelope,
        "description": f"lm-eval task {d.get('task', task.path.stem)}, converted from {task.path.name}.",
        "task": spec,
        "data": files,
        "backends": [backend],
        "strategies": strategies,
        "scorers": scorers,
    }
    path = write_suite(directory, suite, {s: out[s] for s in files}, conv)
    return path, conv.unmapped
