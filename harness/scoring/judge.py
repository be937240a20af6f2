"""LLM-as-judge plumbing: ask one of the suite's backends for JSON that matches a schema.

Every judge call goes through the run's response cache (a rerun pays nothing), is batched across cases (a local
judge runs at batch speed), and is counted apart from the strategies' own calls (evaluation cost is not production
cost). A reply that does not parse is retried with the parse error shown to the judge; when the retries are spent
the score is unscored (counted), never dropped and never a silent 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.backends.base import Backend, GenRequest, GenResult, all_or_first_error
from harness.errors import BudgetReached
from harness.records.setup import JudgeCounts
from harness.scoring.json_match import first_json_object
from harness.suite.schema import GenerationParams

# (requests) -> [(result, answered from cache)], in order: the run gateway's `ask` (cached, budgeted, counted).
Generate = Callable[[Backend, list[GenRequest]], list[tuple[GenResult, bool]]]


class JudgeError(Exception):
    """The judge could not give a usable verdict (call failed, or replies never parsed)."""


def bounded(schema: Any, *, max_chars: int, max_items: int = 8, binary: frozenset[str] = frozenset()) -> Any:
    """The schema a constrained decoder follows: every free string capped at `max_chars` and every list at
    `max_items` (a small judge otherwise rambles until it runs out of tokens and the JSON never closes), and the
    integer fields named in `binary` limited to 0/1. Validation still uses the original model."""
    if isinstance(schema, list):
        return [bounded(x, max_chars=max_chars, max_items=max_items, binary=binary) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bounded(v, max_chars=max_chars, max_items=max_items, binary=binary) for k, v in schema.items()}
    if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
        out["maxLength"] = max_chars
    if out.get("type") == "array" and "maxItems" not in out:
        out["maxItems"] = max_items
    for name, prop in (out.get("properties") or {}).items():
        if name in binary and isinstance(prop, dict) and prop.get("type") == "integer":
            prop["enum"] = [0, 1]
    return out


class Judge:
    def __init__(
        self,
        backend: Backend,
        generate: Generate,
        *,
        params: GenerationParams,
        retries: int = 1,
        max_chars: int = 300,
        max_items: int = 8,
        binary_fields: frozenset[str] = frozenset(),
    ):
        self.backend = backend
        self.params = params
        self.retries = retries
        self.max_chars = max_chars
        self.max_items = max_items
        self.binary_fields = binary_fields
        self.counts = JudgeCounts()
        self._generate = generate
        self._pending: list[tuple[GenRequest, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    # ---- batching: requests made by concurrently scored cases go to the backend together -------------

    async def _submit(self, request: GenRequest) -> GenResult:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        seen = -1
        while seen != len(self._pending):  # let every runnable case reach its next judge call first
            seen = len(self._pending)
            await asyncio.sleep(0)
        batch, self._pending = self._pending, []
        try:
            answers = self._generate(self.backend, [r for r, _ in batch])
        except BudgetReached as exc:  # not a judge failure: the run stops judging and records what it held back
            for _, future in batch:
                future.set_exception(exc)
            return
        except Exception as exc:  # the whole batch failed: each waiting case gets the error
            for _, future in batch:
                future.set_exception(JudgeError(f"judge call failed: {type(exc).__name__}: {exc}"))
            return
        for (_, future), (result, hit) in zip(batch, answers, strict=True):
            self.counts.cache_hits += hit
            if not hit:
                self.counts.calls += 1
                self.counts.input_tokens += result.input_tokens
                self.counts.output_tokens += result.output_tokens
                self.counts.compute_s += result.compute_s
            future.set_result(result)

    # ---- one verdict -----------------------------------------------------------------------------------

    async def ask(self, prompt: str, model: type[BaseModel]) -> BaseModel:
        """A reply parsed into `model`; retried with the parse error shown; JudgeError when it never parses."""
        schema = bounded(
            model.model_json_schema(), max_chars=self.max_chars, max_items=self.max_items, binary=self.binary_fields
        )
        messages = [{"role": "user", "content": prompt}]
        self.counts.requests += 1
        problem = ""
        for _ in range(self.retries + 1):
            result = await self._submit(GenRequest(messages, self.params, json_schema=schema))
            if result.error is not None:
                raise JudgeError(f"judge call failed: {result.error}")
            text = result.text or ""
            try:
                return model.model_validate(first_json_object(text))
            except (ValueError, ValidationError) as exc:
                self.counts.parse_failures += 1
                problem = str(exc).splitlines()[0][:200]
                messages = [
                    *messages,
                    {"role": "assistant", "content": text},
                    {
                        "role": "user",
                        "content": f"That reply is not valid JSON for the schema ({problem}). "
                        "Reply with the JSON object only.",
                    },
                ]
        self.counts.failed_verdicts += 1
        raise JudgeError(f"judge reply did not parse after {self.retries + 1} tries: {problem}")


def run_concurrently(jobs: list[Callable[[], Awaitable[Any]]], on_done: Callable[[int, Any], None]) -> None:
    """Run the jobs on one event loop, concurrently (so their judge calls batch), reporting each as it ends."""

    async def one(i: int, job):
        on_done(i, await job())

    async def main():
        await all_or_first_error([one(i, job) for i, job in enumerate(jobs)])

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no loop in this thread
        asyncio.run(main())
        return
    # Called from inside a running loop (a notebook calling compare()): run ours in a thread of its own.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, main()).result()
