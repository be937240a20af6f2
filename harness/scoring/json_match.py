"""json_match: the answer's first JSON object against the target's, whole or as (key, value) pairs.

`object` mode is 1 only when the answer's object equals the target's: a missing key, a wrong value and a key the
target does not have (a hallucinated field) all make it 0, unless `ignore_extra: true`. `fields` mode scores each
case by the F1 of its (key, value) pairs: a wrong value is a false positive and a false negative, an extra key a
false positive, a missing key a false negative. Both modes keep the pair counts per case (and per key) in the
detail, so the summary gives precision, recall and F1 micro-averaged over the test set and an F1 per key.
Key order and white space never matter: objects are compared as parsed values.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import Field

from harness.scoring.base import Score, Scorer
from harness.suite.schema import StrictModel


class JsonMatchConfig(StrictModel):
    mode: Literal["object", "fields"] = Field(
        "object",
        description="object: 1 only when the answer's object equals the target's (an extra key is wrong unless "
        "ignore_extra); fields: F1 over (key, value) pairs per case, precision/recall/F1 micro over the test set.",
    )
    fields: list[str] | None = Field(
        None, description="Only compare these keys (default: every key of the target and of the answer)."
    )
    ignore_extra: bool = Field(
        False,
        description="Keys the target does not have cost nothing (object mode: not wrong; fields mode: not false "
        "positives). For tasks where extra keys are harmless.",
    )


def first_json_object(text: str) -> Any:
    """The first JSON object in a reply (a ```json fence and chatter around it are ignored); ValueError if none."""
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    decoder = json.JSONDecoder()
    for start in [i for i, ch in enumerate(text) if ch == "{"]:
        try:
            return decoder.raw_decode(text[start:])[0]
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object in the answer")


def pair_counts(got: dict, target: dict, keys: list[str] | None, *, ignore_extra: bool) -> dict[str, dict[str, int]]:
    """Per key: tp (right value), fp (a value the target does not have: wrong or extra), fn (the target's value
    missed: wrong or missing)."""
    names = keys if keys is not None else sorted(set(target) | (set() if ignore_extra else set(got)))
    out = {}
    for name in names:
        in_target, in_got = name in target, name in got
        if in_got and not in_target and ignore_extra:
            continue
        right = in_target and in_got and got[name] == target[name]
        out[name] = {"tp": int(right), "fp": int(in_got and not right), "fn": int(in_target and not right)}
    return out


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 of pair counts; nothing predicted and nothing to find is a perfect 1."""
    precision = tp / (tp + fp) if tp + fp else float(fn == 0)
    recall = tp / (tp + fn) if tp + fn else float(fp == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class JsonMatch(Scorer):
    """Parses the answer's first JSON object and compares it with the target: whole (object) or as (key, value)
    pairs (fields); an extra key counts against the answer unless ignore_extra."""

    kind = "json_match"
    Config = JsonMatchConfig
    config: JsonMatchConfig

    @property
    def binary(self) -> bool:  # type: ignore[override]
        return self.config.mode == "object"

    def score(self, answer, case):
        try:
            target = json.loads(case.target)
        except json.JSONDecodeError:
            return Score(None, detail={"error": "target is not JSON"})
        try:
            got = first_json_object(answer)
        except ValueError:
            return Score(0.0, invalid=True, detail={"error": "answer is not JSON"})
        if not isinstance(target, dict) or not isinstance(got, dict):
            return Score(float(got == target))
        keys = pair_counts(got, target, self.config.fields, ignore_extra=self.config.ignore_extra)
        tp, fp, fn = (sum(k[c] for k in keys.values()) for c in ("tp", "fp", "fn"))
        precision, recall, f1 = prf(tp, fp, fn)
        whole = float(fp == 0 and fn == 0)
        detail = {
            "object": whole,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "pairs": {"tp": tp, "fp": fp, "fn": fn},
            "keys": keys,
        }
        extra = sorted(k for k in got if k not in target and k in keys)
        if extra:
            detail["extra_keys"] = extra
        return Score(whole if self.config.mode == "object" else f1, detail=detail)
