"""`harness init --from-promptfoo` and `--from-lm-eval`: another tool's eval (a promptfoo config, an lm-eval task file)
turned into a suite (suite.yaml, data/*.jsonl and a README saying where it came from and what did not map).

This module holds what both conversions share (the Jinja/Nunjucks subset their templates are read in, YAML with
lm-eval's `!function` tag, the writing of the suite folder) and the two entry points; the conversions themselves are
in harness.commands.convert_promptfoo and harness.commands.convert_lm_eval.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.suite.data import file_sha256
from harness.suite.locations import Loc, parse_yaml

# ---- the template subset: plain {{ field }} substitutions, dotted or indexed at most ----------------------------

TEMPLATE_FIX = (
    "rewrite it with plain {{ field }} substitutions only (compute anything else into a field of the data first), "
    "or write the suite by hand (`harness schema` shows its keys)"
)
_TAG = re.compile(r"\{\{(-?)(.*?)(-?)\}\}|\{%(.*?)%\}|\{#.*?#\}", re.S)
_PATH = re.compile(r"""([A-Za-z_]\w*)((?:\s*\.\s*[A-Za-z_]\w*|\s*\[\s*(?:-?\d+|'[^']*'|"[^"]*")\s*\])*)""")
_STEP = re.compile(r"""\.\s*([A-Za-z_]\w*)|\[\s*(-?\d+|'[^']*'|"[^"]*")\s*\]""")


@dataclass(frozen=True)
class Ref:
    """One `{{ path }}` substitution: a field, or a value inside one (`answers.text[0]`)."""

    path: tuple[str | int, ...]
    text: str

    @property
    def field(self) -> str:
        """The data field a Python template names: the field itself, or one computed for a nested value."""
        return str(self.path[0]) if len(self.path) == 1 else "__".join(str(p).strip("-") for p in self.path)

    def lookup(self, doc: dict[str, Any]) -> Any:
        """The value in `doc`; LookupError(the path as written) when the doc has none there."""
        value: Any = doc
        try:
            for step in self.path:
                value = value[step]
        except (LookupError, TypeError):
            raise LookupError(self.text) from None
        return value


@dataclass
class Template:
    parts: list[str | Ref]

    @property
    def refs(self) -> list[Ref]:
        return [p for p in self.parts if isinstance(p, Ref)]

    def render(self, doc: dict[str, Any]) -> str:
        """As Jinja renders it (str() of each value)."""
        return "".join(p if isinstance(p, str) else _jinja_str(p.lookup(doc)) for p in self.parts)

    def value(self, doc: dict[str, Any]) -> Any:
        """The value itself when the template is one substitution (a list stays a list), else the rendered text."""
        parts = [p for p in self.parts if not (isinstance(p, str) and not p.strip())]
        if len(parts) == 1 and isinstance(parts[0], Ref):
            return parts[0].lookup(doc)
        return self.render(doc)

    def python(self) -> str:
        """The template with Python braces (`{field}`), literal braces doubled."""
        return "".join(
            p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else "{" + p.field + "}" for p in self.parts
        )


def _jinja_str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _feature(expr: str) -> str:
    if re.search(r"(?<!\|)\|(?!\|)", expr):
        return "filter"
    if re.search(r"[\w)\]]\s*\(", expr):
        return "function call"
    if re.search(r"\b(if|else)\b", expr):
        return "inline if"
    return "expression" if expr.strip() else "empty substitution"


def parse_template(
    text: str, *, file: Path, line: int | None, key: str, engine: str = "Jinja", exact: bool = False
) -> Template:
    """Read a template that uses only `{{ field }}` substitutions (a dotted or indexed path at most; `{#...#}` comments
    and `{{-`/`-}}` trimming allowed); anything else is a ConfigError naming the file, line and key. `exact`: the
    text is the whole file from `line` on, so the line of the offending tag is given."""

    def fail(what: str, snippet: str, offset: int) -> None:
        at = line + text.count("\n", 0, offset) if exact and line else line
        snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
        raise ConfigError(
            f"{file}:{at or '?'}: {key}: uses a {engine} {what} ('{snippet}'), which harness does not convert. "
            f"Fix: {TEMPLATE_FIX}."
        )

    parts: list[str | Ref] = []
    pos, trim_next = 0, False
    for m in _TAG.finditer(text):
        literal = text[pos : m.start()]
        _no_open_tag(literal, pos, fail)
        literal = literal.lstrip() if trim_next else literal
        trim_next = False
        pos = m.end()
        if m.group(0).startswith("{#"):
            parts.append(literal)
            continue
        if m.group(4) is not None:
            fail("statement", m.group(0), m.start())
        expr = m.group(2)
        found = _PATH.fullmatch(expr.strip())
        if not found:
            fail(_feature(expr), m.group(0), m.start())
            continue
        steps: list[str | int] = [found.group(1)]
        for name, index in _STEP.findall(found.group(2)):
            steps.append(name if name else int(index) if index.lstrip("-").isdigit() else index[1:-1])
        parts.append(literal.rstrip() if m.group(1) else literal)
        parts.append(Ref(tuple(steps), expr.strip()))
        trim_next = bool(m.group(3))
    rest = text[pos:]
    _no_open_tag(rest, pos, fail)
    parts.append(rest.lstrip() if trim_next else rest)
    return Template([p for p in parts if p != ""])


def _no_open_tag(literal: str, offset: int, fail) -> None:
    for opener in ("{{", "{%"):
        at = literal.find(opener)
        if at >= 0:
            fail("tag with no end", literal[at : at + 40], offset + at)


def jsonable(value: Any) -> Any:
    """A value read from JSON, CSV or Parquet as plain JSON (numpy arrays and scalars included)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars from Parquet
        return jsonable(value.tolist())
    if isinstance(value, float) and value != value:  # NaN: a missing value
        return None
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def free_name(preferred: tuple[str, ...], taken: set[str]) -> str:
    """The first preferred field name the data does not use already."""
    for name in preferred:
        if name not in taken:
            return name
    n = 2
    while f"{preferred[0]}_{n}" in taken:
        n += 1
    return f"{preferred[0]}_{n}"


def strategy_name(label: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_.-")[:60] or "prompt"
    name = name if name[0].isalnum() else f"p{name}"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


# ---- YAML with lm-eval's !function tag --------------------------------------------------------------------------


class FunctionRef(str):
    """A `!function module.name` value: Python code harness does not run."""


class _FunctionLoader(yaml.SafeLoader):
    pass


_FunctionLoader.add_constructor("!function", lambda loader, node: FunctionRef(loader.construct_scalar(node)))


def read_yaml_with_functions(path: Path) -> tuple[Any, dict[Loc, int], dict[Loc, int]]:
    """A YAML file whose `!function x.y` values become FunctionRef; with the line of each key, and the first line of
    each `|` block's text (where a template's own lines can be counted from)."""
    data, node = parse_yaml(
        path, loader=_FunctionLoader, what="task file", fix="give the path of an lm-eval task YAML file"
    )
    lines: dict[Loc, int] = {}
    blocks: dict[Loc, int] = {}

    def walk(item: yaml.Node, loc: Loc) -> None:
        if isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                lines[(*loc, key.value)] = key.start_mark.line + 1
                if isinstance(value, yaml.ScalarNode) and value.style == "|":
                    blocks[(*loc, key.value)] = value.start_mark.line + 2
                walk(value, (*loc, key.value))
        elif isinstance(item, yaml.SequenceNode):
            for i, child in enumerate(item.value):
                lines.setdefault((*loc, i), child.start_mark.line + 1)
                walk(child, (*loc, i))

    if node is not None:
        walk(node, ())
    return data, lines, blocks


# ---- writing the suite folder ----------------------------------------------------------------------------------


@dataclass
class Conversion:
    """What a conversion read and decided, for the README and the command's output."""

    tool: str
    option: str
    source: Path
    inputs: list[Path] = field(default_factory=list)  # every file read: the source, prompt, test and data files
    mapped: list[tuple[str, str]] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def not_mapped(self, note: str) -> None:
        if note not in self.unmapped:
            self.unmapped.append(note)


def default_backend(directory: Path, *, max_new_tokens: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The envelope (name from the folder, seed) and the default local backend that `harness init --from FILE`
    writes (taken from it, so both stay alike)."""
    from harness.commands.init import _suite

    shape = _suite(directory, "cases.jsonl", source="input", target="target", labels=None, ids=True, n_rows=10)
    backend = dict(shape["backends"][0])
    backend["generation"] = {**backend.get("generation", {}), "max_new_tokens": max_new_tokens}
    return {"name": shape["name"], "seed": shape.get("seed", 13)}, backend


def check_directory(directory: Path, *, force: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a folder. Fix: choose a folder name for the suite.")
    if (directory / "suite.yaml").exists() and not force:
        raise ConfigError(f"{directory / 'suite.yaml'} already exists. Fix: choose another folder, or pass --force.")


def write_suite(
    directory: Path,
    suite: dict[str, Any],
    splits: dict[str, list[dict[str, Any]]],
    conversion: Conversion,
    *,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write data/<split>.jsonl, suite.yaml, README.md (and any extra files, such as graders.py); the suite path."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (directory / "data" / f"{split}.jsonl").write_text(text, encoding="utf-8")
    for name, text in (extra_files or {}).items():
        (directory / name).write_text(text, encoding="utf-8")
    header = (
        f"# Converted by `harness init {conversion.option} {conversion.source.name}`; README.md says what mapped "
        "and what did not.\n# Check it with `harness validate`; the schema: `harness schema`.\n"
    )
    path = directory / "suite.yaml"
    path.write_text(header + yaml.safe_dump(suite, sort_keys=False, allow_unicode=True, width=110), encoding="utf-8")
    (directory / "README.md").write_text(_readme(suite, splits, conversion), encoding="utf-8")
    return path


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _readme(suite: dict[str, Any], splits: dict[str, list[dict[str, Any]]], c: Conversion) -> str:
    counts = "cases: " + ", ".join(f"{split} {len(rows)}" for split, rows in splits.items())
    lines = [
        f"# {suite['name']}: converted from {c.tool}",
        "",
        f"Converted by `harness init {c.option} {c.source}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"({counts}). A converted suite keeps the source's prompts and checks as far as harness can express "
        "them: read the lists below, and edit the suite before trusting a verdict.",
        "",
        "## Source",
        "",
        "| file | sha256 |",
        "|---|---|",
        *[f"| `{p.resolve()}` | `{file_sha256(p)}` |" for p in dict.fromkeys(c.inputs) if p.is_file()],
        "",
        "## What mapped to what",
        "",
        f"| {c.tool} | harness |",
        "|---|---|",
        *[f"| {_cell(a)} | {_cell(b)} |" for a, b in c.mapped],
        "",
        "## Not mapped",
        "",
        *([f"- {note}" for note in c.unmapped] or ["Everything mapped."]),
        "",
    ]
    if c.differences:
        lines += ["## Differences to know", "", *[f"- {d}" for d in c.differences], ""]
    return "\n".join(lines)


# ---- the two conversions (imported lazily: `harness init --from FILE` needs neither) ----------------------------


def from_promptfoo(directory: Path, config_path: Path, force: bool = False) -> tuple[Path, list[str]]:
    """Convert a promptfoo config (YAML or JSON) into a suite in `directory`: suite.yaml, data/test.jsonl and a
    README; returns the suite's path and a note for each thing that did not map."""
    from harness.commands.convert_promptfoo import convert

    return convert(Path(directory), Path(config_path), force=force)


def from_lm_eval(directory: Path, task_path: Path, force: bool = False) -> tuple[Path, list[str]]:
    """Convert an lm-eval task file over its local data files into a suite in `directory`: suite.yaml,
    data/{train,dev,test}.jsonl and a README; returns the suite's path and a note for each thing that did not map."""
    from harness.commands.convert_lm_eval import convert

    return convert(Path(directory), Path(task_path), force=force)
