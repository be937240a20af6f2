"""json_match: the answer's first JSON object against the target's, whole or field by field."""

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
        description="object: 1 only when every field matches; fields: the fraction of target fields that match.",
    )
    fields: list[str] | None = Field(None, description="Only compare these fields (default: all fields of the target).")


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


class JsonMatch(Scorer):
    """Parses the answer's first JSON object and compares it with the target, field by field."""

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
        names = self.config.fields or sorted(target)
        per_field = {name: float(name in got and got[name] == target.get(name)) for name in names}
        whole = float(all(per_field.values()))
        value = whole if self.config.mode == "object" else sum(per_field.values()) / max(len(per_field), 1)
        return Score(value, detail={"fields": per_field, "object": whole})
