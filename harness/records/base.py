"""The base of every run record: strict (an unknown key is an error, so a typo never passes silently)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A record of a run folder; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class OpenRecord(BaseModel):
    """A record that keeps keys it does not declare (what a plugin adds), so nothing a run wrote is dropped."""

    model_config = ConfigDict(extra="allow")
