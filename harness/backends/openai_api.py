"""`openai` backend: chat completions from OpenAI, Azure OpenAI or any OpenAI-compatible server (vLLM, llama.cpp
server, Ollama, TGI) through the official SDK. Keys come only from the environment and never reach the cache key,
logs or results. Requests run concurrently in threads; the SDK retries 429/5xx/timeouts with backoff (honouring
Retry-After); a request that still fails becomes an error result for its case, never a crash.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Literal

from pydantic import Field

from harness.backends.base import Backend, GenRequest, GenResult, cut_at_stop
from harness.errors import api_key, require
from harness.suite import StrictModel


class OpenAIConfig(StrictModel):
    base_url: str | None = Field(None, description="An OpenAI-compatible server, e.g. http://localhost:8000/v1; default OpenAI.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the key (never the key itself).")
    azure_api_version: str | None = Field(
        None, description="Azure OpenAI: the API version; base_url is then the resource endpoint and model the deployment.")
    concurrency: int = Field(8, ge=1, le=512, description="Requests in flight at once.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(4, ge=0, le=20, description="Retries of 429, 5xx, timeouts and dropped connections (backoff).")
    json_output: Literal["schema", "object", "prompt"] = Field(
        "schema", description="How a judge's JSON schema is sent: response_format json_schema, json_object, or only in the prompt.")
    context_window: int | None = Field(None, ge=16, description="The model's window in tokens, for fitting RAG context.")


def _cached_tokens(usage: Any) -> int:
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return int(getattr(details, "cached_tokens", 0) or 0)


class OpenAIBackend(Backend):
    kind = "openai"
    Config = OpenAIConfig
    device = "api"

    def __init__(self, spec, config: OpenAIConfig):
        super().__init__(spec, config)
        self._client = None

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.spec.model, "base_url": self.config.base_url,
                "azure_api_version": self.config.azure_api_version}

    def context_window(self) -> int | None:
        return self.config.context_window

    @property
    def client(self):
        if self._client is None:
            openai = require("openai", extra="openai", purpose="the openai backend")
            key = api_key(self.config.api_key_env, who=f"backend '{self.spec.name}'", setting="config.api_key_env")
            common = {"api_key": key, "timeout": self.config.timeout_s, "max_retries": self.config.max_retries}
            if self.config.azure_api_version:
                self._client = openai.AzureOpenAI(azure_endpoint=self.config.base_url,
                                                  api_version=self.config.azure_api_version, **common)
            else:
                self._client = openai.OpenAI(base_url=self.config.base_url, **common)
        return self._client

    def load(self) -> None:
        self.client  # noqa: B018 (fails early, before any case, when the key is missing)

    def _body(self, request: GenRequest) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {"model": self.spec.model, "messages": request.messages,
                                "max_tokens": params.max_new_tokens, "temperature": params.temperature}
        if params.top_p < 1:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)[:4]  # the API takes at most 4; all are applied to the answer below
        if request.json_schema is not None and self.config.json_output != "prompt":
            if self.config.json_output == "schema":
                name = str(request.json_schema.get("title", "answer"))[:64]
                body["response_format"] = {"type": "json_schema",
                                           "json_schema": {"name": name, "schema": request.json_schema, "strict": False}}
            else:
                body["response_format"] = {"type": "json_object"}
        return body

    def _one(self, request: GenRequest) -> GenResult:
        prompt = self.render_prompt(request.messages)
        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(**self._body(request))
        except Exception as exc:  # after the SDK's retries: this case is an error, the run goes on
            return GenResult(text=None, prompt=prompt, error=f"{type(exc).__name__}: {str(exc)[:500]}",
                             latency_s=time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        usage = response.usage
        text = response.choices[0].message.content or "" if response.choices else ""
        return GenResult(
            text=cut_at_stop(text, request.params.stop), prompt=prompt,
            input_tokens=usage.prompt_tokens if usage else 0, output_tokens=usage.completion_tokens if usage else 0,
            cached_input_tokens=_cached_tokens(usage),
            latency_s=elapsed, compute_s=elapsed, latency_kind="request",
        )

    def generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, GenResult]]:
        self.client  # noqa: B018 (a missing key is a configuration error, not one error per case)
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            futures = {pool.submit(self._one, r): i for i, r in enumerate(requests)}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
