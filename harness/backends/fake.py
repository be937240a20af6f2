"""A scripted backend for tests and dry runs: answers, token counts and latencies come from its config."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence

from pydantic import Field, field_validator

from harness.backends.base import Backend, GenRequest, GenResult, cut_at_stop
from harness.costs.tokens import approx_tokens
from harness.suite.schema import StrictModel


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class Rule(StrictModel):
    pattern: str = Field(description="Regular expression searched in the last user message.")
    answer: str

    _check = field_validator("pattern")(_regex)


class FakeConfig(StrictModel):
    answers: dict[str, str] = Field(default_factory=dict, description="Exact last user message -> answer.")
    rules: list[Rule] = Field(default_factory=list, description="First matching rule answers.")
    default: str = Field("", description="Answer when nothing else matches.")
    latency_s: float = Field(0.05, ge=0, description="Scripted latency per request.")
    sleep: bool = Field(False, description="Really wait latency_s (for progress and interrupt tests).")
    fail_on: str | None = Field(None, description="Regex: matching inputs fail with an error, to test error handling.")
    context_window: int | None = Field(
        None, ge=16, description="Tokens the scripted model takes (prompt + answer); None: unlimited."
    )

    _check = field_validator("fail_on")(_regex)


def fake_tokens(text: str) -> int:
    """A stable token count: about one token per 4 characters, at least one per word."""
    return max(len(text.split()), approx_tokens(text))


class FakeBackend(Backend):
    kind = "fake"
    Config = FakeConfig
    config: FakeConfig

    def __init__(self, spec, config: FakeConfig):
        super().__init__(spec, config)
        self._rules = [(re.compile(r.pattern), r.answer) for r in config.rules]
        self._fail = re.compile(config.fail_on) if config.fail_on else None

    def identity(self):
        return {**super().identity(), "script": self.config.model_dump()}

    def count_tokens(self, text: str) -> int:
        return fake_tokens(text)

    def count_tokens_upper(self, messages: list[dict[str, str]]) -> int:
        return fake_tokens(self.render_prompt(messages))  # exactly what generate() reports

    def context_window(self) -> int | None:
        return self.config.context_window

    def _answer(self, last_user: str) -> str:
        if last_user in self.config.answers:
            return self.config.answers[last_user]
        for pattern, answer in self._rules:
            if pattern.search(last_user):
                return answer
        return self.config.default

    def generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, GenResult]]:
        for i, request in enumerate(requests):
            last_user = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
            prompt = self.render_prompt(request.messages)
            if self.config.sleep:
                time.sleep(self.config.latency_s)
            if self._fail and self._fail.search(last_user):
                yield (
                    i,
                    GenResult(
                        text=None, prompt=prompt, error="FakeError: scripted failure", latency_s=self.config.latency_s
                    ),
                )
                continue
            text = cut_at_stop(self._answer(last_user), request.params.stop)
            words = text.split()[: request.params.max_new_tokens]
            text = " ".join(words) if len(words) < len(text.split()) else text
            yield (
                i,
                GenResult(
                    text=text,
                    input_tokens=fake_tokens(prompt),
                    output_tokens=fake_tokens(text) if text else 0,
                    latency_s=self.config.latency_s,
                    compute_s=self.config.latency_s,
                    prompt=prompt,
                ),
            )
