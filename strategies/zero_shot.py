"""Zero-shot: the task's instructions and the case, nothing else."""

from __future__ import annotations

from harness.records.setup import DataUsed, ZeroShotGiven
from harness.strategy import Strategy, StrategyRequest
from harness.suite.prompts import build_messages, prompt_parts


class ZeroShot(Strategy):
    kind = "zero_shot"

    @classmethod
    def unseeded(cls, config, suite):
        return "zero-shot draws nothing at random, so every seed would send the same prompts"

    @classmethod
    def data_used(cls, config, dataset, suite):
        return DataUsed()

    def prepare(self) -> ZeroShotGiven:
        return ZeroShotGiven()

    def request(self, case):
        task = self.ctx.suite.task
        return StrategyRequest(build_messages(task, case), parts=prompt_parts(task, case))
