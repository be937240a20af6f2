"""Validation messages for the suite file and every component's Config: each pydantic error turned into one line
naming the file, the line, the field path and what to do about it (the closest valid key, what the field is)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from harness.errors import closest
from harness.suite.locations import Loc, format_loc, line_of


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated/list wrappers down to a model class where there is one."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (list, tuple, dict, typing.Union) or str(origin) == "<class 'types.UnionType'>":
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def describe_errors(
    exc: ValidationError, model: type[BaseModel], *, file: Path, lines: dict[Loc, int], prefix: Loc = ()
) -> list[str]:
    """Turn pydantic errors into 'file:line: path: problem. Fix: ...' lines."""
    out = []
    for loc, msg in explain_errors(exc, model):
        full = prefix + loc
        line = line_of(lines, full)
        where = f"{file}:{line}" if line else str(file)
        out.append(f"{where}: {format_loc(full)}: {msg}")
    return out


def _what_it_is(model: type[BaseModel], loc: Loc) -> str:
    """' (`key`: <the first sentence of its description>)' for a field that has one, else ''."""
    parent = _model_at(model, loc[:-1]) if loc else None
    field = parent.model_fields.get(str(loc[-1])) if parent else None
    if field is None or not field.description:
        return ""
    return f" (`{loc[-1]}`: {field.description.split('. ')[0].rstrip('.')})"


def explain_errors(exc: ValidationError, model: type[BaseModel]) -> list[tuple[Loc, str]]:
    """(location, problem with its fix) for each pydantic error, relative to `model`."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            allowed = list(parent.model_fields) if parent else []
            hint = closest(str(loc[-1]), allowed)
            msg = f"unknown key '{loc[-1]}'.{hint} Allowed keys here: {', '.join(allowed)}."
        elif kind == "missing":
            msg = f"required key '{loc[-1]}' is missing. Fix: add it."
        elif "Fix:" in err["msg"]:  # our own validators' messages already say what to do
            msg = err["msg"].removeprefix("Value error, ") + "."
        elif kind == "value_error":  # our own validators' messages say what is wrong with the whole section
            msg = f"{err['msg'].removeprefix('Value error, ')}. Fix: change this value."
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
            msg = f"{err['msg']} (got {shown[:80]}). Fix: change this value{_what_it_is(model, loc)}."
        out.append((loc, msg))
    return out
