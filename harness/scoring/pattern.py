"""Scorers that look for the expected answer inside a longer reply: a phrase (includes), a regular expression
(regex), or a number within a tolerance (numeric), each against the target or any of the case's further
references."""

from __future__ import annotations

import math
import re
import sys
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from harness.scoring.base import ReferencesConfig, Score, Scorer, references
from harness.scoring.normalise import normalise
from harness.suite.data import Case


class NormalisedConfig(ReferencesConfig):
    case_sensitive: bool = Field(
        False, description="Tell upper from lower case when comparing (default: ignore case, as exact_match)."
    )
    keep_punctuation: bool = Field(
        False,
        description="Keep punctuation when comparing (default: punctuation counts as white space, as exact_match).",
    )

    def normalised(self, text: str) -> str:
        return normalise(text, case_sensitive=self.case_sensitive, punctuation=self.keep_punctuation)


class IncludesConfig(NormalisedConfig):
    """includes: 1 when the normalised target (or a further reference) appears in the normalised answer as whole
    words."""


class Includes(Scorer):
    """1 when the target, or any further reference, appears in the answer as whole words, after normalising case,
    punctuation and white space as exact_match does.

    'cat' is not found in 'concatenate'. Words are told apart by white space (and by ASCII punctuation, unless
    keep_punctuation; 。 and 、 are not among it), so a reference in unspaced text (Chinese, Japanese) is found only
    where spaces or ASCII punctuation surround it. An empty answer scores 0."""

    kind = "includes"
    Config = IncludesConfig
    config: IncludesConfig
    binary = True

    def score(self, answer, case):
        text = f" {self.config.normalised(answer)} "
        for ref in references(case, self.config.references_field):
            wanted = self.config.normalised(ref)
            if wanted and f" {wanted} " in text:
                return Score(1.0, detail={"found": ref})
        return Score(0.0)


# ---- regex ---------------------------------------------------------------------------------------------------

FLAGS = {"ignorecase": re.IGNORECASE, "multiline": re.MULTILINE, "dotall": re.DOTALL}


class RegexConfig(NormalisedConfig):
    """regex: 1 when a Python regular expression matches the answer, or (with `group`) when the text it captures
    equals the target or a further reference."""

    pattern: str = Field(
        description="A Python regular expression (re module syntax), searched anywhere in the answer, e.g. "
        "'(?i)answer:\\s*(\\w+)'. Quote it in single quotes in YAML so backslashes stay as written."
    )
    flags: list[Literal["ignorecase", "multiline", "dotall"]] = Field(
        default_factory=list,
        description="Regular expression flags, any of: ignorecase, multiline (^ and $ match at each line), dotall "
        "(a dot also matches a newline).",
    )
    group: int | str | None = Field(
        None,
        description="Compare the text this group captures (a number, 0 for the whole match, or a (?P<name>...) "
        "name), normalised as exact_match, with the target or any reference; an answer the pattern does not "
        "match is invalid (scored 0, counted). Without it: 1 when the pattern matches at all.",
    )

    def compiled(self) -> re.Pattern[str]:
        flags = 0
        for name in self.flags:
            flags |= FLAGS[name]
        return re.compile(self.pattern, flags)

    @field_validator("flags", mode="before")
    @classmethod
    def _one_flag(cls, flags: object) -> object:
        return [flags] if isinstance(flags, str) else flags

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"{pattern!r} is not a valid regular expression: {exc}. Fix: correct the pattern (Python re "
                "syntax; escape a literal character such as ( [ . * + ? with a backslash, and quote the pattern in "
                "single quotes in YAML)"
            ) from None
        return pattern

    @field_validator("group", mode="before")
    @classmethod
    def _not_a_bool(cls, group: object) -> object:
        if isinstance(group, bool):
            raise ValueError(
                f"{str(group).lower()} is not a group. Fix: give the group's number (0 for the whole match) or its name"
            )
        return group

    @field_validator("group")
    @classmethod
    def _group_exists(cls, group: int | str | None, info: ValidationInfo) -> int | str | None:
        if isinstance(group, str) and group.isdigit():
            group = int(group)
        pattern = info.data.get("pattern")
        if group is None or pattern is None:  # no group, or the pattern itself is refused above
            return group
        compiled = re.compile(pattern)
        names = sorted(compiled.groupindex)
        if isinstance(group, int):
            if group < 0 or group > compiled.groups:
                have = f"has {compiled.groups} group{'s' if compiled.groups != 1 else ''}"
                raise ValueError(
                    f"group {group} does not exist: the pattern {have}. Fix: give a group number from 0 (the whole "
                    f"match) to {compiled.groups}"
                    + (
                        f", or a group name ({', '.join(names)})"
                        if names
                        else ", or add (...) around the part to capture"
                    )
                )
        elif group not in compiled.groupindex:
            raise ValueError(
                f"the pattern has no group named '{group}'."
                + (f" Named groups: {', '.join(names)}." if names else "")
                + f" Fix: name an existing group, or add (?P<{group}>...) to the pattern"
            )
        return group


class Regex(Scorer):
    """A regular expression on the answer: 1 when it matches anywhere or, with `group`, when the text it captures
    equals the target or a further reference (normalised as exact_match).

    With `group`, an answer the pattern does not match is not in the expected form: invalid (scored 0, counted)."""

    kind = "regex"
    Config = RegexConfig
    config: RegexConfig
    binary = True

    def __init__(self, spec, config, task):
        super().__init__(spec, config, task)
        self._pattern = self.config.compiled()

    def score(self, answer, case):
        found = self._pattern.search(answer)
        if self.config.group is None:
            return Score(float(found is not None), detail={"match": found.group(0) if found else None})
        captured = found.group(self.config.group) if found else None
        if captured is None:  # no match, or the group took no part in it
            return Score(0.0, invalid=True, detail={"match": None})
        got = self.config.normalised(captured)
        hit = any(got == self.config.normalised(ref) for ref in references(case, self.config.references_field))
        return Score(float(bool(got) and hit), detail={"match": captured})


# ---- numeric -------------------------------------------------------------------------------------------------

# A number as people write it: an optional sign (+, - or the minus sign U+2212; not a hyphen inside a word: COVID-19
# is 19), digits with or without comma-grouped thousands (1,234,567: groups of exactly three), a decimal part, or
# only a decimal part (.5), and an optional exponent (1e-3).
NUMBER = re.compile(
    r"(?:(?<![\w.])[-+\u2212])?"
    r"(?:\d{1,3}(?:,\d{3})+(?![\d])(?:\.\d+)?|\d+(?:\.\d+)?|(?<!\d)\.\d+)"
    r"(?:[eE][-+]?\d+)?"
)


def first_number(text: str) -> float | None:
    """The first (finite) number written in `text`, or None."""
    for match in NUMBER.finditer(text):
        value = float(match.group(0).replace(",", "").replace("\u2212", "-"))
        if math.isfinite(value):
            return value
    return None


class NumericConfig(ReferencesConfig):
    """numeric: 1 when the first number in the answer is within a tolerance of the first number in the target (or
    a further reference)."""

    abs_tol: float = Field(
        0.0,
        ge=0,
        description="Largest absolute difference that still counts as right (0.01: within a cent); default 0.",
    )
    rel_tol: float = Field(
        0.0,
        ge=0,
        description="Largest difference that still counts as right, as a share of the target's size (0.05: within 5% "
        "of |target|); default 0. Within either tolerance is enough.",
    )


class Numeric(Scorer):
    """1 when the first number in the answer is within abs_tol, or rel_tol x |target|, of the first number in the
    target (best over the references).

    Numbers are read as people write them: -1,234.5, 1e-3, +3, .5 (commas only as thousands separators, in groups
    of three). A target without a number leaves the case unscored; an answer without one is invalid."""

    kind = "numeric"
    Config = NumericConfig
    config: NumericConfig
    binary = True

    def score(self, answer: str, case: Case) -> Score:
        targets = [
            n for n in (first_number(ref) for ref in references(case, self.config.references_field)) if n is not None
        ]
        if not targets:
            return Score(None, detail={"error": f"no number in the target {case.target[:80]!r}"})
        got = first_number(answer)
        if got is None:
            return Score(0.0, invalid=True, detail={"answer_number": None, "target_number": targets[0]})
        best = next((t for t in targets if self.close(got, t)), targets[0])
        return Score(float(self.close(got, best)), detail={"answer_number": got, "target_number": best})

    def close(self, got: float, target: float) -> bool:
        diff = abs(got - target)
        # a few units in the last place of slack, so 1.1 is within 0.1 of 1.0 as written
        slack = 4 * sys.float_info.epsilon * max(abs(got), abs(target))
        return diff <= max(self.config.abs_tol, self.config.rel_tol * abs(target)) + slack
