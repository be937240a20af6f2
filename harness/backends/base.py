"""What every inference backend provides: identity (for the cache), prompt rendering and batched generation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from harness.costs.tokens import approx_tokens
from harness.suite.schema import BackendSpec, GenerationParams, StrictModel


@dataclass
class GenRequest:
    messages: list[dict[str, str]]
    params: GenerationParams
    # Constrain the answer to JSON matching this schema (judges). Backends that cannot constrain decoding
    # still get the schema in the prompt; their answers are validated and retried by the judge.
    json_schema: dict[str, Any] | None = None


@dataclass
class GenResult:
    """One answer. How latency was measured is part of the record (see `latency_kind`).

    latency_s: wall time from the start of the call that produced this answer until the answer was ready.
    compute_s: this request's share of the backend's busy time (a batch's wall time / its size).
    """

    text: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # prompt tokens the provider served from its prompt cache
    latency_s: float = 0.0
    compute_s: float = 0.0
    batch_size: int = 1
    ttft_s: float | None = None
    prompt: str | None = None
    error: str | None = None
    latency_kind: str = "request"
    # Attempts that may have been completed (and billed) by a provider without their answer reaching us: timed out,
    # dropped or garbled after sending. The run's gateway counts them against budget_usd at their most.
    unconfirmed_attempts: int = 0


class Backend:
    """Base class. Subclasses set `kind` and `Config` and implement `generate`."""

    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = StrictModel
    device: str = "cpu"

    def __init__(self, spec: BackendSpec, config: BaseModel):
        self.spec = spec
        self.config = config

    def identity(self) -> dict[str, Any]:
        """Everything that changes the answers; it keys the response cache."""
        return {"kind": self.kind, "model": self.spec.model}

    def load(self) -> None:
        """Load weights (and warm up) before the first timed call, so load time is not counted as latency."""

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's prompt (used to fit retrieved context into the window).

        The base estimate is about 4 characters a token; backends with a tokenizer count exactly."""
        return approx_tokens(text)

    def count_tokens_upper(self, messages: list[dict[str, str]]) -> int:
        """At least as many tokens as the model will bill for these messages, before any call: a byte-level BPE
        never makes more tokens than UTF-8 bytes, plus a few per message for the chat format. Backends with the
        model's own tokenizer count exactly. The budget cap relies on this never being too low."""
        return sum(len(m["content"].encode("utf-8")) + 8 for m in messages) + 8

    def billed_attempts_at_most(self) -> int:
        """How many times one request may be billed: 1, or more for a backend that retries after a timeout or a
        dropped answer (the provider may have finished and billed the lost attempt). budget_usd reserves this many."""
        return 1

    def context_window(self) -> int | None:
        """The longest prompt + answer the model takes, in tokens; None when unknown."""
        return None

    def render_prompt(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(f"[{m['role']}] {m['content']}" for m in messages)

    def generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, GenResult]]:
        """Yield (index into requests, result) as each answer is ready, in any order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release memory held by the model."""


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = len(text)
    for s in stop:
        pos = text.find(s)
        if s and pos != -1:
            cut = min(cut, pos)
    return text[:cut]


async def all_or_first_error(awaitables: Sequence[Awaitable[Any]]) -> None:
    """Await them all concurrently; when one raises, the others are cancelled and awaited (nothing is left running
    to fail later with a traceback of its own, e.g. a request still reading its body as the client closes), every
    outcome is retrieved, and the first error is raised."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    if not tasks:
        return
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:  # this coroutine was cancelled (Ctrl-C): the others go with it
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task in done and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
