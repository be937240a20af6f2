"""Zero-shot: the task's instructions and the case, nothing else."""

from __future__ import annotations

from harness.prompts import build_messages
from harness.strategy import Strategy, StrategyRequest


class ZeroShot(Strategy):
    kind = "zero_shot"

    def prepare(self):
        return {"exemplars": 0}

    def request(self, case):
        return StrategyRequest(build_messages(self.ctx.suite.task, case))
