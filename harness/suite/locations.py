"""Read YAML while remembering the line of every key, so errors can point at `file:line`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError

Loc = tuple[str | int, ...]


def not_utf8(path: object, raw: bytes, exc: UnicodeDecodeError) -> str:
    """'file:line: not UTF-8 (byte offset N, column C). Fix: ...' for a file that failed to decode."""
    line = raw[: exc.start].count(b"\n") + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        how = "it was saved as UTF-16 (it starts with a UTF-16 byte-order mark). Fix: re-save it as UTF-8"
    else:
        how = f"byte 0x{raw[exc.start]:02x} is not UTF-8 (an Excel or Latin-1 export?). Fix: re-save the file as UTF-8"
    return f"{path}:{line}: not valid UTF-8 at byte offset {exc.start} (column {column}): {how}."


def parse_yaml(
    path: Path, *, loader: type = yaml.SafeLoader, what: str = "suite file", fix: str = ""
) -> tuple[Any, Any]:
    """(the data, its node tree) of a YAML file; ConfigError naming the file, the line and the fix otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: file not found. Fix: {fix or 'check the path, or run `harness init DIR` to scaffold a suite'}."
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a {what}. Fix: name the YAML file.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror}). Fix: check its permissions.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(not_utf8(path, raw, exc)) from None
    try:
        return yaml.load(text, Loader=loader), yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        fix = (
            "YAML indents with spaces only; replace the tab with spaces"
            if "'\\t'" in problem
            else "correct the syntax at that line"
        )
        raise ConfigError(f"{where}: invalid YAML: {problem}. Fix: {fix}.") from None


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file; return the data and a map from location tuple to 1-based line."""
    data, node = parse_yaml(path)
    lines: dict[Loc, int] = {}
    if node is not None:
        try:
            _walk(node, (), lines)
        except DuplicateKey as dup:
            raise ConfigError(
                f"{path}:{dup.second}: {format_loc(dup.loc)}: key given twice (first on line {dup.first}). Fix: keep one."
            ) from None
    return data, lines


class DuplicateKey(Exception):
    def __init__(self, loc: Loc, first: int, second: int):
        self.loc, self.first, self.second = loc, first, second


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            if loc + (key,) in lines:  # YAML keeps the last of two equal keys silently; we refuse
                raise DuplicateKey(loc + (key,), lines[loc + (key,)], key_node.start_mark.line + 1)
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, loc + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), lines)


def format_loc(loc: Loc) -> str:
    """('strategies', 2, 'config', 'k') -> 'strategies[2].config.k'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of the deepest part of `loc` that exists in the file."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
