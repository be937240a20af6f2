"""python: a grading function of your own, in a Python file in the suite's folder.

`function: scoring.py:grade` names the file (relative to the suite's folder) and the function, called once per
answer as `grade(answer: str, case: dict)` and returning a number (True/False count as 1/0) or a pair (number,
detail), detail a dict or a string kept with the score. The file is imported when the suite is loaded, so a missing
file, one that does not import, or a missing function fails `harness validate`; its content is part of the suite's
fingerprint, so an edited grading function is a different measurement. Whatever the function raises or returns
that is not a finite number leaves that case unscored (counted), with the reason in its detail; it never stops the
run.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import numbers
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, field_validator

from harness.errors import ConfigError, closest
from harness.scoring.base import Score, Scorer
from harness.suite.data import Case
from harness.suite.schema import StrictModel

Grader = Callable[[str, dict[str, Any]], Any]


class GraderError(ValueError):
    """Why a grading function cannot be loaded, with the fix."""


class PythonConfig(StrictModel):
    """python: your own grading function, `grade(answer, case)` in a Python file in the suite's folder."""

    function: str = Field(
        description="FILE:FUNCTION, e.g. 'scoring.py:grade': a Python file (relative to the suite's folder) and the "
        "function in it. It is called as grade(answer: str, case: dict) with the case's id, input, target and its "
        "other data fields, and returns a number (True/False count as 1/0) or a pair (number, detail), detail a "
        "dict or a string kept with the score. An exception, or anything that is not a finite number, leaves the "
        "case unscored with the reason."
    )
    binary: bool = Field(
        False,
        description="The function returns only 0 or 1 (right or wrong): intervals are Wilson's and paired tests "
        "exact, and any other value leaves the case unscored. Default: graded scores, bootstrap intervals.",
    )

    _path: Path | None = PrivateAttr(None)
    _grade: Grader | None = PrivateAttr(None)

    @field_validator("function")
    @classmethod
    def _file_and_name(cls, value: str) -> str:
        file, colon, name = value.rpartition(":")
        if not colon or not file.strip() or not name.isidentifier():
            raise ValueError(
                f"{value!r} does not name a file and a function. Fix: write FILE:FUNCTION, the Python file relative "
                "to the suite's folder and the function's name, e.g. 'scoring.py:grade'"
            )
        return value

    @property
    def file(self) -> str:
        return self.function.rpartition(":")[0]

    @property
    def name(self) -> str:
        return self.function.rpartition(":")[2]

    @property
    def path(self) -> Path | None:
        """The grading file's absolute path, once `bind` has loaded it."""
        return self._path

    def bind(self, base: Path) -> str:
        """Load the function from the file, its path resolved against `base` (the suite's folder), and keep both
        with this config; returns the sha256 of the source the function was compiled from (GraderError if it
        cannot be loaded)."""
        path = (base / self.file).resolve()
        self._grade, sha = load_grader(path, self.name, shown=self.file)
        self._path = path
        return sha

    def grader(self) -> Grader:
        """The bound function; loaded against the working directory when the suite loader did not bind it."""
        if self._grade is None:
            try:
                self.bind(Path.cwd())
            except GraderError as exc:
                raise ConfigError(f"python scorer, function {self.function!r}: {exc}") from None
        assert self._grade is not None
        return self._grade


def load_grader(path: Path, name: str, *, shown: str | None = None) -> tuple[Grader, str]:
    """The function `name` defined in the Python file at `path`, and the sha256 of the source it was compiled from
    (read once, so the fingerprint is of the code that scores). GraderError says what is wrong and the fix."""
    shown = shown or str(path)
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        raise GraderError(
            f"the grading file '{shown}' does not exist ({path}). Fix: create it, or give the path of the Python file "
            "that holds the function, relative to the suite's folder, e.g. 'scoring.py:grade'"
        ) from None
    except IsADirectoryError:
        raise GraderError(
            f"'{shown}' is a folder ({path}). Fix: name the Python file in it, e.g. 'scoring.py:grade'"
        ) from None
    except OSError as exc:
        raise GraderError(f"cannot read '{shown}' ({exc.strerror}). Fix: check the file's permissions") from None
    sha = hashlib.sha256(source).hexdigest()
    module = types.ModuleType(f"harness_grader_{sha[:16]}")
    module.__file__ = str(path)
    try:
        code = compile(source, str(path), "exec")
    except (SyntaxError, ValueError) as exc:  # ValueError: a null byte in the source
        line = getattr(exc, "lineno", None)
        at = f"{path}:{line}" if line else str(path)
        raise GraderError(
            f"'{shown}' is not valid Python: {getattr(exc, 'msg', None) or exc} ({at}). Fix: correct the file; "
            f"`python {path}` shows the same error"
        ) from None
    sys.modules[module.__name__] = module  # as an import would (dataclasses and pickle look the module up there)
    folder = str(path.parent)
    added = folder not in sys.path
    if added:  # the file may import helpers beside it, as it would when run as a script
        sys.path.insert(0, folder)
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module.__name__, None)
        raise GraderError(
            f"importing '{shown}' raised {type(exc).__name__}: {exc}{_at(_where(exc, path))}. Fix: make the file import "
            f"on its own (`python {path}` runs the same code): the suite's loader imports it"
        ) from None
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    found = module.__dict__.get(name)
    if found is None:
        functions = [k for k, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module.__name__]
        listed = f" Functions in it: {', '.join(functions)}." if functions else ""
        raise GraderError(
            f"'{shown}' defines no function '{name}'.{closest(name, functions)}{listed} Fix: name one of its "
            f"functions after the ':', or define `def {name}(answer, case):` in it"
        )
    if not callable(found):
        raise GraderError(
            f"'{name}' in '{shown}' is not a function but a value of type {type(found).__name__}. Fix: name a function, "
            f"`def {name}(answer, case):`"
        )
    if inspect.iscoroutinefunction(found):
        raise GraderError(f"'{name}' in '{shown}' is `async def`. Fix: make it a plain `def {name}(answer, case):`")
    try:
        inspect.signature(found).bind("answer", {})
    except TypeError as exc:
        raise GraderError(
            f"'{name}' in '{shown}' cannot be called as {name}(answer, case): {exc}. Fix: define it as "
            f"`def {name}(answer: str, case: dict):`"
        ) from None
    except ValueError:  # no signature to inspect (a builtin): let the call tell
        pass
    return found, sha


def _where(exc: BaseException, path: Path) -> str | None:
    """'FILE:LINE' of the last frame of `exc`'s traceback in the grading file, or None."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f"{path.name}:{frames[-1].lineno}" if frames else None


def _at(where: str | None) -> str:
    return f" ({where})" if where else ""


def case_fields(case: Case) -> dict[str, Any]:
    """What the grading function gets: the case's data fields, with `id`, `input` (the text or chat messages
    the model was given) and `target` (a copy: the function may change it freely)."""
    return {**copy.deepcopy(case.metadata), "id": case.id, "input": copy.deepcopy(case.input), "target": case.target}


def _number(value: Any) -> float | None:
    """A finite float from a number, a bool or a NumPy-like scalar; None for anything else."""
    if not isinstance(value, numbers.Real) and callable(getattr(value, "item", None)):
        try:
            value = value.item()  # numpy.float64, numpy.bool_, a one-element tensor
        except Exception:
            return None
    if not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    """The function's detail as JSON (what cases.jsonl can hold): what JSON has no form for is kept as text."""
    try:
        found = json.loads(json.dumps(detail, default=str))
    except (TypeError, ValueError):  # keys JSON cannot have, a structure that contains itself
        return {"note": str(detail)[:2000]}
    return found if isinstance(found, dict) else {"note": str(detail)[:2000]}


def as_score(result: Any, *, binary: bool, name: str) -> Score:
    """A grading function's return value as a Score: a number, or (number, detail)."""
    detail: dict[str, Any] = {}
    value = result
    if isinstance(result, tuple | list) and len(result) == 2:
        value, extra = result
        if isinstance(extra, str):
            detail = {"note": extra}
        elif isinstance(extra, dict):
            detail = _plain(extra)
        else:
            return Score(
                None,
                detail={
                    "error": f"{name} returned a pair whose second item is a {type(extra).__name__}, not a dict or a "
                    "string"
                },
            )
    number = _number(value)
    if number is None:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return Score(None, detail={**detail, "error": f"{name} returned {shown}, not a finite number"})
    if binary and number not in (0.0, 1.0):
        return Score(None, detail={**detail, "error": f"{name} returned {number:g}, but the scorer is binary (0 or 1)"})
    return Score(number, detail=detail)


class PythonFunction(Scorer):
    """Your own grading function, `grade(answer, case)` in a Python file in the suite's folder: a number per answer
    (True/False count as 1/0), or (number, detail).

    An exception or a value that is not a finite number leaves that case unscored (counted), with the reason in its
    detail. Graded (bootstrap intervals) unless `binary: true`."""

    kind = "python"
    Config = PythonConfig
    config: PythonConfig

    def __init__(self, spec, config, task):
        super().__init__(spec, config, task)
        self._grade = self.config.grader()

    @property
    def binary(self) -> bool:  # type: ignore[override]
        return self.config.binary

    def score(self, answer: str, case: Case) -> Score:
        name = f"{self.config.name}()"
        try:
            result = self._grade(answer, case_fields(case))
        except (Exception, SystemExit) as exc:  # the function's failure is this case's, never the run's
            detail = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            where = _where(exc, self.config.path) if self.config.path else None
            return Score(None, detail={**detail, "at": where} if where else detail)
        return as_score(result, binary=self.config.binary, name=name)
