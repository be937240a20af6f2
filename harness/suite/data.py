"""Cases: read JSONL/CSV/Parquet splits, check them (ids, targets, templates, leakage) and hash them."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError, closest
from harness.suite.locations import not_utf8
from harness.suite.schema import DataSpec, TaskSpec

SPLITS = ("train", "dev", "test")
MAX_FIELD_CHARS = 1_000_000  # default of data.max_field_chars


@dataclass
class Case:
    """One row of the task: an input (text or chat messages), the expected answer, and the rest as metadata."""

    id: str
    input: str | list[dict[str, str]]
    target: str
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int | None = field(default=None, compare=False, repr=False)  # where it was read, for messages
    # The row as read and the template `input` was rendered with, so a strategy with a template of its own renders
    # the same case its way (harness.suite.prompts).
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    template: str | None = field(default=None, compare=False, repr=False)

    def input_text(self) -> str:
        if isinstance(self.input, str):
            return self.input
        return "\n".join(m.get("content", "") for m in self.input)


@dataclass
class Dataset:
    train: list[Case]
    dev: list[Case]
    test: list[Case]
    hashes: dict[str, str]  # file path -> sha256 (splits, and files strategies read, such as a RAG corpus)
    base: Path | None = None  # the suite's folder: other data paths (a corpus) are relative to it
    instructions: str | None = None  # data.format openai_chat: the system turn the lines share

    def split(self, name: str) -> list[Case]:
        return getattr(self, name)


def curve_subset(train: list[Case], fraction: float, seed: int) -> list[Case]:
    """`fraction` of the train cases (at least one), drawn by `seed`: the subsets of one seed are nested (a larger
    fraction keeps every case of a smaller one), and keep the split's order."""
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    keep = sorted(order[: max(1, math.ceil(fraction * len(train) - 1e-9))])
    return [train[i] for i in keep]


# ---- reading files -------------------------------------------------------------------------------


def _decode(path: Path) -> str:
    if path.is_dir():
        raise DataError(
            f"{path}: is a folder; a data file (.jsonl, .csv or .parquet) is expected here. Fix: name the file."
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path}: data file not found. Fix: check the path in the suite's `data` section (paths are relative to the suite file)."
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the data file ({exc.strerror}). Fix: check its permissions.") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(not_utf8(path, raw, exc)) from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl/.json-lines, .csv or .parquet file as dicts; errors name the file and line."""
    suffix = path.suffix.lower()
    if path.is_dir() or not path.exists():
        _decode(path)  # raises the folder / not-found message
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".parquet", ".pq"):
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise DataError(
                f"{path}: cannot read Parquet: {exc}. Fix: check the file was written completely."
            ) from None
        return frame.to_dict(orient="records")
    raise DataError(f"{path}: unsupported data format '{suffix}'. Fix: use .jsonl, .csv or .parquet.")


def _read_csv(path: Path) -> list[dict[str, Any]]:
    text = _decode(path)
    limit = csv.field_size_limit()
    csv.field_size_limit(1 << 30)  # long fields are judged by data.max_field_chars, the same for every format
    try:
        return _csv_rows(path, csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}. Fix: quote fields that contain commas or newlines.") from None
    finally:
        csv.field_size_limit(limit)


def _csv_rows(path: Path, reader: csv.DictReader) -> list[dict[str, Any]]:
    header = reader.fieldnames or []
    for i, name in enumerate(header):
        if name and name in header[:i]:
            raise DataError(
                f"{path}:1: header column '{name}' appears twice (the second would hide the first). "
                "Fix: give each column its own name."
            )
    rows = []
    try:
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            end = reader.line_num  # the line the row ends on (quoted fields may span lines)
            if None in row:
                raise DataError(
                    f"{path}:{end}: more values than header columns ({len(header)}). "
                    "Fix: quote fields that contain commas."
                )
            if any(value is None for value in row.values()):
                if end > start and _exhausted(reader):  # an open quote swallowed the rest of the file
                    raise DataError(
                        f"{path}:{start}: a quote opened on this line is never closed (the row runs to "
                        f"the end of the file, line {end}). Fix: close the quote, and write a quote inside "
                        'a quoted field as "".'
                    )
                raise DataError(
                    f"{path}:{end}: fewer values than header columns ({len(header)}: "
                    f"{', '.join(header)}). Fix: add the missing values, or quote fields that contain commas."
                )
            row["__line__"] = end
            rows.append(row)
    except csv.Error as exc:
        raise DataError(
            f"{path}:{reader.line_num}: malformed CSV: {exc}. Fix: quote fields that contain commas or newlines."
        ) from None
    return rows


def _exhausted(reader: csv.DictReader) -> bool:
    try:
        next(reader)
    except StopIteration:
        return True
    return False


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(_decode(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{number}: malformed JSON ({exc.msg}, column {exc.colno}). Fix: make each line one JSON object."
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"{path}:{number}: expected a JSON object, got {type(row).__name__}. Fix: make each line one JSON object."
            )
        row["__line__"] = number
        rows.append(row)
    return rows


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- records -> cases ----------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import math

        return (isinstance(value, float) and math.isnan(value)) or type(value).__name__ in ("NAType", "NaTType")
    except TypeError:
        return False


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if is_missing(value):  # Parquet/pandas nulls arrive as NaN or NA, never as the text "nan"
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)


def _check_sizes(row: dict[str, Any], where: str, case_id: str, limit: int) -> None:
    """A field longer than any model's context is a broken file (an unclosed quote, a pasted dump), not a case."""
    for name, value in row.items():
        size = len(value) if isinstance(value, str) else len(as_text(value)) if isinstance(value, dict | list) else 0
        if size > limit:
            raise DataError(
                f"{where}: case '{case_id}': field `{name}` is {size:,} characters, over data.max_field_chars "
                f"({limit:,}). Fix: shorten or split the case, or raise data.max_field_chars in the suite if the "
                "models really take inputs this long."
            )


def to_cases(
    rows: list[dict[str, Any]], task: TaskSpec, *, path: Path, split: str, max_field_chars: int = MAX_FIELD_CHARS
) -> list[Case]:
    if not rows:
        raise DataError(f"{path}: the {split} split is empty. Fix: add cases, or change the split fractions.")
    fields = set().union(*(r.keys() for r in rows)) - {"__line__"}
    needed = set(task.template_fields()) if task.prompt_template else {task.input_field}
    for name in sorted(needed | {task.target_field}):
        if name not in fields:
            what = (
                "task.prompt_template names"
                if name in task.template_fields()
                else ("task.target_field is" if name == task.target_field else "task.input_field is")
            )
            raise DataError(
                f"{path}: {what} field '{name}', which the data lacks.{closest(name, fields)} Fields in this file: "
                f"{', '.join(sorted(fields))}. Fix: rename the field in the suite or in the data."
            )
    cases = []
    for i, row in enumerate(rows, start=1):
        where = f"{path}:{row.get('__line__', i)}"
        case_id = as_text(row.get(task.id_field)) if task.id_field in row else f"{split}-{i}"
        if not case_id:
            raise DataError(f"{where}: empty `{task.id_field}`. Fix: give every case an id.")
        _check_sizes(row, where, case_id, max_field_chars)
        target = row.get(task.target_field)
        if target is None or as_text(target).strip() == "":
            raise DataError(
                f"{where}: case '{case_id}' has no `{task.target_field}`. Fix: fill in the expected answer."
            )
        if task.prompt_template:
            try:
                value: Any = task.prompt_template.format(**{k: as_text(v) for k, v in row.items()})
            except (KeyError, IndexError, ValueError) as exc:
                raise DataError(
                    f"{where}: task.prompt_template cannot be filled ({exc}). Fix: check the braces in the template."
                ) from None
        else:
            value = row.get(task.input_field)
            if not _is_messages(value):
                value = as_text(value)
            if value == "" or value == []:
                raise DataError(
                    f"{where}: case '{case_id}' has an empty `{task.input_field}`. Fix: fill it in or drop the row."
                )
        target_text = as_text(target)
        if task.labels is not None and target_text not in task.labels:
            raise DataError(
                f"{where}: target '{target_text}' is not one of task.labels ({', '.join(task.labels)}).{closest(target_text, task.labels)} "
                f"Fix: correct the label or add it to task.labels."
            )
        meta = {k: v for k, v in row.items() if k not in {task.id_field, task.target_field, "__line__"}}
        cases.append(
            Case(
                id=case_id,
                input=value,
                target=target_text,
                metadata=meta,
                line=row.get("__line__"),
                fields={k: v for k, v in row.items() if k != "__line__"},
                template=task.prompt_template,
            )
        )
    return cases


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def _at(path: Path, case: Case) -> str:
    return f"{path}:{case.line}" if case.line else str(path)


def check_cases(splits: dict[str, list[Case]], sources: dict[str, Path], *, allow_overlap: bool) -> None:
    """Duplicate ids anywhere, and test inputs that also appear in train/dev (leakage)."""
    seen: dict[str, tuple[str, Case]] = {}
    for split, cases in splits.items():
        for case in cases:
            if case.id in seen:
                first_split, first = seen[case.id]
                raise DataError(
                    f"{_at(sources[split], case)}: duplicate case id '{case.id}' (also in the {first_split} split, at "
                    f"{_at(sources[first_split], first)}). Fix: make ids unique across train, dev and test."
                )
            seen[case.id] = (split, case)
    if allow_overlap:
        return
    known: dict[str, tuple[str, Case]] = {}
    for split in ("train", "dev"):
        for case in splits.get(split, []):
            known.setdefault(_normalise(case.input_text()), (split, case))
    for case in splits["test"]:
        hit = known.get(_normalise(case.input_text()))
        if hit:
            split, other = hit
            raise DataError(
                f"{_at(sources['test'], case)}: test case '{case.id}' has the same input as {split} case '{other.id}' "
                f"({_at(sources[split], other)}; leakage: the score would reward memorising). Fix: remove one of "
                "them, or set data.allow_overlap: true."
            )


def split_rows(
    rows: list[dict[str, Any]], fractions: dict[str, float], *, seed: int, stratify: str | None
) -> dict[str, list]:
    """Seeded split of one file; stratified by the target when the task has labels."""
    rng = random.Random(seed)
    groups: dict[str, list] = defaultdict(list)
    for row in rows:
        groups[as_text(row.get(stratify)) if stratify else ""].append(row)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        n = len(members)
        n_test = round(n * fractions["test"])
        n_dev = round(n * fractions["dev"])
        out["test"] += members[:n_test]
        out["dev"] += members[n_test : n_test + n_dev]
        out["train"] += members[n_test + n_dev :]
    for split in SPLITS:
        out[split].sort(key=lambda r: r.get("__line__", 0))
    return out


def _data_file(base: Path, rel: str, key: str) -> Path:
    """The file that data.<key> names, or a DataError naming it, the suite key, and the likely intended file."""
    path = (base / rel).resolve()
    if path.is_dir():
        raise DataError(
            f"{path}: is a folder ({key} in the suite); a data file (.jsonl, .csv or .parquet) is expected "
            "here. Fix: name the file."
        )
    if not path.exists():
        near = ""
        if path.parent.is_dir():
            names = [p.name for p in path.parent.iterdir() if p.is_file()]
            near = closest(path.name, names)
        raise DataError(
            f"{path}: data file not found ({key} in the suite).{near} "
            "Fix: check the path; it is relative to the suite file."
        )
    return path


class _Rows:
    """Rows as the task reads them: with data.format openai_chat, each chat line turned into an input and a target
    (harness.suite.chat_format), its system turn the same in every file."""

    def __init__(self, spec: DataSpec, task: TaskSpec) -> None:
        from harness.suite.chat_format import SystemTurn

        self.spec, self.task = spec, task
        self.system = SystemTurn()

    def __call__(self, rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
        if self.spec.format != "openai_chat" or not rows:
            return rows
        from harness.suite.chat_format import chat_rows

        given = self.task.instructions is not None
        out, _ = chat_rows(
            rows,
            path,
            input_field=self.task.input_field,
            target_field=self.task.target_field,
            instructions_given=given,
            system=self.system,
        )
        return out


def _suite_at(loc: tuple) -> str:
    from harness.suite.locations import format_loc

    return f"{format_loc(loc)} in the suite"


def load_dataset(
    spec: DataSpec, task: TaskSpec, *, base: Path, seed: int, where: Callable[[tuple], str] = _suite_at
) -> Dataset:
    """Read, convert and check all splits. Raises DataError naming the file and line on any problem; `where`
    names a place in the suite file (for problems of a setting rather than of a data file)."""
    splits: dict[str, list[Case]] = {}
    sources: dict[str, Path] = {}
    hashes: dict[str, str] = {}
    stratify = task.target_field if task.labels else None
    as_task = _Rows(spec, task)
    if spec.hf:
        from harness.suite.hf_data import hf_splits

        parts, sources, hashes[f"hf:{spec.hf.path}"] = hf_splits(
            spec,
            base=base,
            seed=seed,
            stratify=stratify if spec.format == "fields" else None,
            where=where,
            split_rows=split_rows,
        )
        for split in SPLITS:
            rows = as_task(parts[split], sources[split])
            if not rows and split != "test":
                splits[split] = []
                continue
            splits[split] = to_cases(rows, task, path=sources[split], split=split, max_field_chars=spec.max_field_chars)
    elif spec.source:
        path = _data_file(base, spec.source, "data.source")
        rows = as_task(read_records(path), path)
        if not rows:
            raise DataError(
                f"{path}: the file has no cases (data.source in the suite). Fix: add cases, or name another file."
            )
        hashes[spec.source] = file_sha256(path)
        fractions = spec.split.model_dump() if spec.split else {}
        parts = split_rows(rows, fractions, seed=seed, stratify=stratify)
        for split in SPLITS:
            sources[split] = path
            if split == "dev" and not parts[split]:
                splits[split] = []
                continue
            if not parts[split]:
                raise DataError(
                    f"{path}: the {split} split is empty: data.split.{split} ({fractions.get(split, 0):g}) of the "
                    f"{len(rows)} cases of data.source rounds to none. Fix: add cases, or raise data.split.{split}."
                )
            splits[split] = to_cases(parts[split], task, path=path, split=split, max_field_chars=spec.max_field_chars)
    else:
        for split in SPLITS:
            rel = getattr(spec, split)
            if rel is None:
                splits[split] = []
                continue
            path = _data_file(base, rel, f"data.{split}")
            sources[split] = path
            rows = as_task(read_records(path), path)
            if not rows:
                raise DataError(
                    f"{path}: the {split} split is empty: the file has no cases (data.{split} in the "
                    "suite). Fix: add cases, or name another file."
                )
            splits[split] = to_cases(rows, task, path=path, split=split, max_field_chars=spec.max_field_chars)
            hashes[rel] = file_sha256(path)
    sources.setdefault("train", sources["test"])
    sources.setdefault("dev", sources["test"])
    check_cases(splits, sources, allow_overlap=spec.allow_overlap)
    return Dataset(
        train=splits["train"],
        dev=splits["dev"],
        test=splits["test"],
        hashes=hashes,
        base=base,
        instructions=as_task.system.text,
    )
