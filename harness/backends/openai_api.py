"""`openai` backend: chat completions from OpenAI, Azure OpenAI or any OpenAI-compatible server (vLLM, llama.cpp
server, Ollama, TGI) through the official SDK (AsyncOpenAI / AsyncAzureOpenAI).

- Keys come only from the environment and never reach the cache key, logs or results.
- Requests run concurrently on one event loop; how many are in flight follows AIMD: halved on a 429 (at most once
  per wait), raised by one after as many successes as the current limit; every change is logged and kept in
  `concurrency_log`.
- A 429, 408, 409, 5xx, timeout, dropped connection or unreadable body is retried with exponential backoff and
  full jitter, waiting at least what the server asks (`retry-after-ms`, `retry-after`, `x-ratelimit-reset-*`);
  each attempt has its own timeout. A request that still fails becomes an error result for its case, never a crash.
- Answers are streamed (`stream_options.include_usage`) so time to first token is measured; usage comes from the
  API, cached prompt tokens included.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from pydantic import Field

from harness.backends.base import Backend, GenRequest, GenResult, all_or_first_error, cut_at_stop
from harness.errors import api_key, provider_error, redact, require
from harness.suite.schema import StrictModel

log = logging.getLogger(__name__)


class OpenAIConfig(StrictModel):
    base_url: str | None = Field(
        None, description="An OpenAI-compatible server, e.g. http://localhost:8000/v1; default OpenAI."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the key (never the key itself)."
    )
    azure_api_version: str | None = Field(
        None,
        description="Azure OpenAI: the API version; base_url is then the resource endpoint and model the deployment.",
    )
    concurrency: int = Field(8, ge=1, le=1024, description="Most requests in flight at once (AIMD lowers it on 429s).")
    min_concurrency: int = Field(1, ge=1, le=1024, description="AIMD never goes below this.")
    timeout_s: float = Field(60.0, gt=0, description="Timeout of each attempt.")
    max_retries: int = Field(
        6, ge=0, le=50, description="Retries of 429/408/409/5xx, timeouts, dropped connections, bad bodies."
    )
    backoff_s: float = Field(0.5, gt=0, description="First backoff; doubles per attempt, with full jitter.")
    max_backoff_s: float = Field(
        30.0, gt=0, description="Longest wait between attempts (a server's Retry-After may ask more)."
    )
    stream: bool = Field(True, description="Stream answers to measure time to first token (usage via stream_options).")
    json_output: Literal["schema", "object", "prompt"] = Field(
        "schema",
        description="How a judge's JSON schema is sent: response_format json_schema, json_object, or only in the prompt.",
    )
    context_window: int | None = Field(
        None, ge=16, description="The model's window in tokens, for fitting RAG context."
    )
    price_as: str | None = Field(
        None, description="Price calls as this model (e.g. an Azure deployment's model); default: the backend's model."
    )


def describe(exc: BaseException, limit: int = 300) -> str:
    """'ErrorType: message' for a case's error: any key the provider quoted back is masked, then the message is
    cut to `limit` characters (in that order, or the head of a cut key would escape the mask)."""
    return f"{type(exc).__name__}: {redact(str(exc))[:limit]}"


def _cached_tokens(usage: Any) -> int:
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return int(getattr(details, "cached_tokens", 0) or 0)


_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)")


def _duration_s(text: str) -> float | None:
    """OpenAI's reset durations: '1s', '6m0s', '20ms', '1h2m3.5s'."""
    parts = _DURATION.findall(text.strip())
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(v) * scale[u] for v, u in parts)


def retry_after_s(headers: Any) -> float | None:
    """How long the server asks us to wait: retry-after-ms, retry-after (seconds or an HTTP date), or the
    x-ratelimit-reset-* of the exhausted limit."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            try:
                return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
            except (TypeError, ValueError):
                pass
    waits = []
    for kind in ("requests", "tokens"):
        if headers.get(f"x-ratelimit-remaining-{kind}") == "0" and headers.get(f"x-ratelimit-reset-{kind}"):
            wait = _duration_s(headers[f"x-ratelimit-reset-{kind}"])
            if wait is not None:
                waits.append(wait)
    return max(waits) if waits else None


def _answered(text: str, usage: Any, request: GenRequest, elapsed: float, *, ttft_s: float | None = None) -> GenResult:
    """An answer as the API returned it (whole or streamed): cut at the stop strings, with the tokens it billed."""
    return GenResult(
        text=cut_at_stop(text, request.params.stop),
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
        cached_input_tokens=_cached_tokens(usage),
        latency_s=elapsed,
        compute_s=elapsed,
        ttft_s=ttft_s,
    )


@dataclass
class AIMD:
    """Additive increase, multiplicative decrease of the requests in flight; waiters are served first come, first
    served, and a release wakes one waiter (no thundering herd with thousands of queued requests)."""

    limit: int
    low: int = 1
    high: int = 8
    in_flight: int = 0
    successes: int = 0
    decreased_at: float = 0.0
    log: list[dict[str, Any]] = field(default_factory=list)
    _waiters: collections.deque = field(default_factory=collections.deque)

    def bind(self) -> None:
        """Start on the current event loop (each generate() runs its own); the learned limit carries over."""
        self._waiters = collections.deque()
        self.in_flight = 0

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter  # the slot was taken for us by _wake

    async def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def success(self) -> None:
        self.successes += 1
        if self.successes >= self.limit and self.limit < self.high:
            self.successes = 0
            self._set(self.limit + 1, "recovered")

    def rate_limited(self, wait_s: float) -> None:
        now = time.monotonic()
        # One decrease per wave: the requests already in flight when the first 429 came do not halve it again.
        if now - self.decreased_at < max(wait_s, 0.5):
            return
        self.decreased_at = now
        self.successes = 0
        self._set(max(self.low, self.limit // 2), f"429, waiting {wait_s:.2f}s")

    def _set(self, limit: int, why: str) -> None:
        if limit != self.limit:
            log.info("openai: concurrency %d -> %d (%s)", self.limit, limit, why)
            self.log.append({"t": time.time(), "from": self.limit, "to": limit, "why": why})
            self.limit = limit
            self._wake()


class OpenAIBackend(Backend):
    kind = "openai"
    Config = OpenAIConfig
    config: OpenAIConfig
    device = "api"

    def __init__(self, spec, config: OpenAIConfig):
        super().__init__(spec, config)
        self.aimd = AIMD(
            limit=config.concurrency, low=min(config.min_concurrency, config.concurrency), high=config.concurrency
        )
        self.stats = {"attempts": 0, "retries": 0, "rate_limited": 0, "timeouts": 0, "failed": 0}

    @property
    def concurrency_log(self) -> list[dict[str, Any]]:
        return self.aimd.log

    def identity(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "model": self.spec.model,
            "base_url": self.config.base_url,
            "azure_api_version": self.config.azure_api_version,
        }
        if self.config.price_as:
            out["price_as"] = self.config.price_as
        return out

    def context_window(self) -> int | None:
        return self.config.context_window

    def _key(self) -> str:
        return api_key(self.config.api_key_env, who=f"backend '{self.spec.name}'", setting="config.api_key_env")

    def _client(self):
        openai = require("openai", extra="openai", purpose="the openai backend")
        # Our own retries and backoff (AIMD needs to see each 429), so the SDK's are off.
        common = {"api_key": self._key(), "timeout": self.config.timeout_s, "max_retries": 0}
        if self.config.azure_api_version:
            return openai.AsyncAzureOpenAI(
                azure_endpoint=self.config.base_url, api_version=self.config.azure_api_version, **common
            )
        return openai.AsyncOpenAI(base_url=self.config.base_url, **common)

    def load(self) -> None:
        require("openai", extra="openai", purpose="the openai backend")
        self._key()  # fails early, before any case, when the key is missing

    def _body(self, request: GenRequest) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": request.messages,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
        }
        if params.top_p < 1:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)[:4]  # the API takes at most 4; all are applied to the answer below
        if request.json_schema is not None and self.config.json_output != "prompt":
            if self.config.json_output == "schema":
                name = str(request.json_schema.get("title", "answer"))[:64]
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": request.json_schema, "strict": False},
                }
            else:
                body["response_format"] = {"type": "json_object"}
        return body

    async def _call(self, client, request: GenRequest) -> GenResult:
        body = self._body(request)
        started = time.perf_counter()
        if not self.config.stream:
            response = await client.chat.completions.create(**body)
            usage = response.usage
            text = (response.choices[0].message.content or "") if response.choices else ""
            return _answered(text, usage, request, time.perf_counter() - started)
        stream = await client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        ttft = None
        usage = None
        finished = False
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices or []:
                finished = finished or choice.finish_reason is not None
                piece = choice.delta.content if choice.delta else None
                if piece:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    parts.append(piece)
        if not finished:  # a body that is not a stream, or a stream cut short: never an (empty) answer
            raise ValueError("the answer stream ended without a finish_reason (malformed or cut short)")
        return _answered("".join(parts), usage, request, time.perf_counter() - started, ttft_s=ttft)

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.config.max_backoff_s, self.config.backoff_s * 2**attempt))

    async def _one(self, client, request: GenRequest, stop: threading.Event | None = None) -> GenResult | None:
        openai = require("openai", extra="openai", purpose="the openai backend")
        prompt = self.render_prompt(request.messages)
        started = None  # from the first attempt: waiting for a free slot is our queue, not the model's latency
        problem = ""
        unconfirmed = 0  # attempts sent whose outcome we never saw: the provider may have billed them
        for attempt in range(self.config.max_retries + 1):
            await self.aimd.acquire()
            if stop is not None and stop.is_set():  # the caller went away: start nothing new
                await self.aimd.release()
                return None
            if started is None:
                started = time.perf_counter()
            self.stats["attempts"] += 1
            wait = None
            try:
                result = await asyncio.wait_for(self._call(client, request), self.config.timeout_s)
            except openai.RateLimitError as exc:
                self.stats["rate_limited"] += 1
                wait = retry_after_s(exc.response.headers) if exc.response is not None else None
                self.aimd.rate_limited(wait if wait is not None else self._backoff(attempt))
                problem = describe(exc)
            except openai.APIStatusError as exc:
                if exc.status_code in (401, 403):  # the key, not the case: every call would fail alike, so stop
                    await self.aimd.release()
                    raise provider_error(
                        exc,
                        who=f"openai backend '{self.spec.name}' ({self.spec.model})",
                        key_env=self.config.api_key_env,
                    ) from None
                if exc.status_code not in (408, 409) and exc.status_code < 500:
                    await self.aimd.release()
                    return self._failed(prompt, started, describe(exc, 500))
                wait = retry_after_s(exc.response.headers) if exc.response is not None else None
                problem = describe(exc)
            except (asyncio.TimeoutError, openai.APITimeoutError) as exc:
                self.stats["timeouts"] += 1
                unconfirmed += 1
                problem = f"timeout after {self.config.timeout_s}s ({type(exc).__name__})"
            except (openai.APIConnectionError, openai.APIResponseValidationError, ValueError) as exc:
                unconfirmed += 1
                problem = describe(exc)  # dropped connection, unreadable body
            else:
                self.aimd.success()
                await self.aimd.release()
                result.prompt = prompt
                result.latency_s = time.perf_counter() - started  # the case waited through its retries too
                result.unconfirmed_attempts = unconfirmed
                return result
            await self.aimd.release()
            if attempt < self.config.max_retries:
                self.stats["retries"] += 1
                await asyncio.sleep(max(wait or 0.0, self._backoff(attempt)))
        self.stats["failed"] += 1
        failed = self._failed(
            prompt, started or time.perf_counter(), f"{problem} (after {self.config.max_retries + 1} attempts)"
        )
        failed.unconfirmed_attempts = unconfirmed
        return failed

    def billed_attempts_at_most(self) -> int:
        return 1 + self.config.max_retries

    @staticmethod
    def _failed(prompt: str, started: float, error: str) -> GenResult:
        return GenResult(text=None, prompt=prompt, error=error, latency_s=time.perf_counter() - started)

    def generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, GenResult]]:
        """Yield answers as they arrive; the requests run on an event loop of their own thread."""
        self.load()
        done: queue.Queue = queue.Queue()
        stop = threading.Event()

        async def main():
            self.aimd.bind()
            client = self._client()
            try:

                async def one(i: int, request: GenRequest):
                    result = await self._one(client, request, stop)
                    if result is not None:
                        done.put((i, result))

                await all_or_first_error([one(i, r) for i, r in enumerate(requests)])
            finally:
                await client.close()
                done.put(None)

        errors: list[BaseException] = []

        def run():
            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced in the caller's thread
                errors.append(exc)
                done.put(None)

        thread = threading.Thread(target=run, name=f"openai-{self.spec.name}", daemon=True)
        thread.start()
        try:
            while True:
                item = done.get()
                if item is None:
                    break
                yield item
        finally:
            stop.set()  # an interrupted caller: no new request starts; those in flight finish
        thread.join(timeout=self.config.timeout_s + 5)
        if errors:
            raise errors[0]
