"""Local transformers backend: chat template, length-sorted left-padded batches, honest token and time counts.

Latency: every answer of a batch is ready when the batch's `generate` call returns, so each answer's
`latency_s` is that call's wall time (what a caller waiting in that batch sees), plus the time to compute
the shared prompt prefix (below), which a request with a cold prefix cache waits for. `compute_s` is the
batch wall time divided by its size (the answer's share of machine time, used for cost). Throughput
(output tokens / busy seconds) is computed from these in the summary; the two are different numbers.
A prompt prefix shared by every request (instructions, fixed exemplars) is computed once and its KV
cache reused, as serving stacks with prefix caching do; outputs are identical to plain batching.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.backends.base import Backend, GenRequest, GenResult, cut_at_stop
from harness.backends.default_llm import ensure_embedded, is_embedded
from harness.errors import ModelUnavailableError, require
from harness.home import tree_fingerprint
from harness.suite.schema import GenerationParams, StrictModel

log = logging.getLogger(__name__)


class HFConfig(StrictModel):
    batch_size: int | Literal["auto"] = Field(
        "auto",
        description="Requests generated together. auto: 16 on CPU; on a GPU, as many as the memory left after "
        "the weights holds (each request's KV cache and activations at the batch's lengths), halved on out-of-memory.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="auto: bfloat16 on GPUs that support it; on CPU float32, or bfloat16 on a CPU with bf16 "
        "instructions when its answers match fp32's on dev (bf16_parity).",
    )
    bf16_parity: float = Field(
        0.9,
        ge=0,
        le=1,
        description="dtype auto on a CPU with AMX or AVX512-BF16: answer in bf16 when at least this share of "
        "greedy answers on dev cases agree with fp32's (checked once per model and task).",
    )
    adapter: str | None = Field(None, description="Path of a peft adapter folder to apply.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) for hub ids.")
    prefix_cache: bool = Field(
        True,
        description="Compute the prompt prefix shared by all requests (instructions, exemplars) once and reuse its KV cache.",
    )
    min_prefix_tokens: int = Field(32, ge=1, description="Shortest shared prefix worth caching.")


def cache_kwarg(model) -> str:
    """The forward() keyword for a KV cache: transformers 5 renamed `past_key_values` to `cache`; support both.
    Looks through wrappers (DDP's `.module`, peft's base model)."""
    import inspect

    model = getattr(model, "module", model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def pick_device(wanted: str) -> str:
    if wanted != "auto":
        return wanted
    torch = require("torch", extra="local", purpose="the hf backend")
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


CPU_BATCH = 16  # measured on the embedded model: tokens/s flattens out past 8-16 on a few cores
MAX_AUTO_BATCH = 256
HEADROOM_SHARE = 0.8  # of the free memory measured after the weights are loaded; the rest for the allocator


def batch_from_headroom(free_bytes: int, config, tokens_per_request: int, dtype_bytes: int) -> int:
    """How many requests of `tokens_per_request` (prompt + new tokens) fit in `free_bytes`: each holds its KV cache
    (2 x layers x kv heads x head dim per token) and, while its prompt is prefilled, the activations of one layer
    (hidden states, attention and MLP intermediates) and the last position's logits in fp32."""
    config = getattr(config, "text_config", None) or config
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    hidden = int(config.hidden_size)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    inner = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    kv = 2 * layers * kv_heads * head_dim * dtype_bytes * tokens_per_request
    prefill = (4 * hidden + 3 * inner) * dtype_bytes * tokens_per_request
    logits = int(config.vocab_size) * 4
    per_request = kv + prefill + logits
    return max(1, min(MAX_AUTO_BATCH, int(free_bytes * HEADROOM_SHARE) // per_request))


def _out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def pick_dtype(wanted: str, device: str):
    import torch

    if wanted != "auto":
        return getattr(torch, wanted)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class HFBackend(Backend):
    kind = "hf"
    Config = HFConfig
    config: HFConfig

    def __init__(self, spec, config: HFConfig):
        super().__init__(spec, config)
        self._model = None
        self._tokenizer = None
        self._source: str | None = None
        self._window: int | None = None
        self._enforcer_data = None
        self._identity: dict[str, Any] | None = None
        self._oom_cap: int | None = None  # the batch that last ran out of memory, halved
        self.precision: Any = None  # how `dtype: auto` was settled, where it was (harness.costs.calibrate)
        self.device = "cpu" if config.device == "auto" else config.device

    # ---- identity (cheap: no model load) ---------------------------------------------------------

    def source(self) -> str:
        """The model's folder (the embedded model is set up on first call) or its hub id."""
        if self._source is None:
            name = self.spec.model
            if not name:
                raise ModelUnavailableError(
                    f"backend '{self.spec.name}': `model` is empty. Fix: name a path, hub id or smollm2-135m-instruct."
                )
            self._source = str(ensure_embedded(name)) if is_embedded(name) else name
        return self._source

    def identity(self) -> dict[str, Any]:
        if self._identity is None:  # hashing weights or asking the hub once per backend is enough
            self._identity = self._compute_identity()
        return self._identity

    def _compute_identity(self) -> dict[str, Any]:
        source = self.source()
        local = Path(source)
        model_id = tree_fingerprint(local) if local.exists() else self._hub_commit(source)
        adapter = tree_fingerprint(Path(self.config.adapter)) if self.config.adapter else None
        device = pick_device(self.config.device)
        dtype = str(pick_dtype(self.config.dtype, device)).removeprefix("torch.")
        return {
            "kind": self.kind,
            "model": self.spec.model,
            "model_sha": model_id,
            "adapter_sha": adapter,
            "device": device,
            "dtype": dtype,
        }

    def _hub_commit(self, repo_id: str) -> str:
        """The commit a hub id resolves to (so an updated model is not answered from the cache), else id@revision."""
        revision = self.config.revision or "main"
        try:
            from huggingface_hub import snapshot_download

            folder = snapshot_download(repo_id, revision=revision, allow_patterns=["config.json"])
            return f"{repo_id}@{Path(folder).name}"
        except Exception:  # offline or not on the hub: the load will say so
            return f"{repo_id}@{revision}"

    # ---- loading ---------------------------------------------------------------------------------

    def _explained(self, load, *args, **kwargs):
        try:
            return load(*args, **kwargs)
        except OSError as exc:  # not a folder, not on the hub, or offline
            raise ModelUnavailableError(
                f"backend '{self.spec.name}': cannot load model '{self.spec.model}' ({str(exc).splitlines()[0]}).\n"
                "Fix: give a local folder, a hub id on a machine with hub access (HF_HUB_OFFLINE unset), "
                "or the embedded smollm2-135m-instruct."
            ) from None

    def tokenizer(self):
        if self._tokenizer is None:
            transformers = require("transformers", extra="local", purpose="the hf backend")
            tok = self._explained(
                transformers.AutoTokenizer.from_pretrained, self.source(), revision=self.config.revision
            )
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._tokenizer = tok
        return self._tokenizer

    def model(self):
        if self._model is None:
            transformers = require("transformers", extra="local", purpose="the hf backend")
            self.device = pick_device(self.config.device)
            dtype = pick_dtype(self.config.dtype, self.device)
            started = time.perf_counter()
            model = self._explained(
                transformers.AutoModelForCausalLM.from_pretrained,
                self.source(),
                dtype=dtype,
                revision=self.config.revision,
            )
            if self.config.adapter:
                peft = require("peft", extra="local", purpose="loading an adapter")
                # the adapter in the model's dtype (peft would keep it in fp32 beside bf16 weights, casting every
                # call: 2x slower answers on CPU), as serving engines load adapters
                model = peft.PeftModel.from_pretrained(model, self.config.adapter, autocast_adapter_dtype=False)
            self._model = model.to(self.device).eval()
            log.info(
                "loaded %s on %s (%s) in %.1fs", self.spec.model, self.device, dtype, time.perf_counter() - started
            )
        return self._model

    def load(self) -> None:
        import torch

        model, tok = self.model(), self.tokenizer()
        ids = tok("warm up", return_tensors="pt").to(self.device)
        with torch.inference_mode():  # first calls pay one-off kernel set-up; keep it out of measured latency
            model.generate(**ids, max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id)

    def render_prompt(self, messages):
        return self.tokenizer().apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer()(text, add_special_tokens=False).input_ids)

    def count_tokens_upper(self, messages: list[dict[str, str]]) -> int:
        return self.count_tokens(self.render_prompt(messages))  # the chat template rendered: exact

    def context_window(self) -> int | None:
        """From the model's config (no weights loaded): max_position_embeddings or its equivalent."""
        if self._window is None:
            transformers = require("transformers", extra="local", purpose="the hf backend")
            config = self._explained(
                transformers.AutoConfig.from_pretrained, self.source(), revision=self.config.revision
            )
            config = getattr(config, "text_config", None) or config
            sizes = [
                getattr(config, n, None) for n in ("max_position_embeddings", "n_positions", "max_sequence_length")
            ]
            self._window = next((int(s) for s in sizes if isinstance(s, int) and s > 0), 0)
        return self._window or None

    def close(self) -> None:
        self._model = None

    def use_dtype(self, dtype: str) -> None:
        """Answer in `dtype` from now on (a settled `auto`): the identity, and so the cache keys, follow."""
        if pick_dtype(self.config.dtype, pick_device(self.config.device)) == pick_dtype(dtype, "cpu"):
            return
        self.config = self.config.model_copy(update={"dtype": dtype})
        self._model, self._identity = None, None

    def batch_size(self, tokens_per_request: int | None = None) -> int:
        """The batch to generate in: the config's number, or auto (see HFConfig.batch_size). On a GPU this measures
        the free memory, so the model is loaded first."""
        if self.config.batch_size != "auto":
            return self.config.batch_size
        cap = self._oom_cap or MAX_AUTO_BATCH
        if pick_device(self.config.device) != "cuda" or tokens_per_request is None:
            return min(cap, CPU_BATCH)
        import torch

        model = self.model()
        free, _ = torch.cuda.mem_get_info()
        dtype_bytes = next(model.parameters()).element_size()
        return min(cap, batch_from_headroom(free, model.config, tokens_per_request, dtype_bytes))

    # ---- generation ------------------------------------------------------------------------------

    def _gen_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        tok = self.tokenizer()
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "pad_token_id": tok.pad_token_id}
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
        return kwargs

    def _prefix_kv(self, prefix: list[int]):
        """KV cache of a shared prompt prefix, computed once (batch of one)."""
        import torch
        from transformers import DynamicCache

        model = self.model()
        cache = DynamicCache(config=model.config)
        with torch.inference_mode():
            model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True, **{cache_kwarg(model): cache})
        return cache

    def _json_constraint(self, schemas: list[dict[str, Any]]):
        """prefix_allowed_tokens_fn that keeps each row's answer inside its JSON schema (lm-format-enforcer)."""
        import sys

        lmfe = require("lmformatenforcer", extra="rag", purpose="schema-constrained judge output on the hf backend")
        try:  # transformers 5 moved PreTrainedTokenizerBase, which lmfe imports from transformers.tokenization_utils
            from transformers.tokenization_utils import PreTrainedTokenizerBase  # noqa: F401
        except ImportError:
            import transformers.tokenization_utils_base as base_module

            sys.modules["transformers.tokenization_utils"] = base_module
        from lmformatenforcer.integrations.transformers import _decode_function

        if self._enforcer_data is None:  # a pass over the vocabulary: once per backend
            # lmfe's own builder decodes the vocabulary one token at a time (a minute here); batch_decode does the
            # same decodes in one call: for each token, its text alone and after "0" (which shows a leading space).
            tok = self.tokenizer()
            size = len(tok)
            special = set(tok.all_special_ids)
            zero = tok.encode("0", add_special_tokens=False)[-1]
            plain = tok.batch_decode([[i] for i in range(size)])
            after_zero = tok.batch_decode([[zero, i] for i in range(size)])
            regular = [
                (i, after_zero[i][1:], len(after_zero[i][1:]) > len(plain[i])) for i in range(size) if i not in special
            ]
            self._enforcer_data = lmfe.TokenEnforcerTokenizerData(
                regular, functools.partial(_decode_function, tok), tok.eos_token_id, False, size
            )
        enforcers = [lmfe.TokenEnforcer(self._enforcer_data, lmfe.JsonSchemaParser(s)) for s in schemas]
        return lambda row, sent: enforcers[row].get_allowed_tokens(sent.tolist()).allowed_tokens

    def _run_batch(
        self, ids: list[list[int]], params: GenerationParams, prefix=None, schemas: list[dict[str, Any]] | None = None
    ) -> tuple[list[str], list[int], float]:
        """Generate for one batch. With a shared prefix, rows are [prefix][pad...][suffix] and the mask hides the
        pads; positions come from the mask, so answers equal those of plain left padding."""
        import copy

        import torch

        tok, model = self.tokenizer(), self.model()
        pad = tok.pad_token_id
        p = len(prefix[0]) if prefix else 0
        tails = [x[p:] for x in ids]
        width = max(len(x) for x in tails)
        head = prefix[0] if prefix else []
        input_ids = torch.tensor([head + [pad] * (width - len(x)) + x for x in tails], device=self.device)
        mask = torch.tensor([[1] * p + [0] * (width - len(x)) + [1] * len(x) for x in tails], device=self.device)
        kwargs = self._gen_kwargs(params)
        if schemas:
            kwargs["prefix_allowed_tokens_fn"] = self._json_constraint(schemas)
        started = time.perf_counter()
        if prefix:
            cache = copy.deepcopy(prefix[1])
            cache.batch_repeat_interleave(len(ids))
            kwargs[cache_kwarg(model)] = cache
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        if self.device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - started
        texts, counts = [], []
        eos = model.generation_config.eos_token_id
        stop_ids = {tok.eos_token_id, pad, *([eos] if isinstance(eos, int) else (eos or []))}
        for row in out[:, p + width :].tolist():
            n = 0
            while n < len(row) and row[n] not in stop_ids:
                n += 1
            counts.append(n)
            texts.append(tok.decode(row[:n], skip_special_tokens=True))
        return texts, counts, wall

    def _shared_prefix(self, ids: list[list[int]]):
        """(prefix ids, its KV cache, seconds to compute it) when the requests share a long enough prefix."""
        if not self.config.prefix_cache or len(ids) < 2:
            return None, 0.0
        first, n = ids[0], min(len(x) for x in ids) - 1  # every request keeps at least one token of its own
        for x in ids[1:]:
            i = 0
            while i < n and x[i] == first[i]:
                i += 1
            n = i
        if n < self.config.min_prefix_tokens:
            return None, 0.0
        started = time.perf_counter()
        try:
            kv = self._prefix_kv(first[:n])
        except Exception as exc:  # e.g. out of memory: answer without the shortcut rather than fail
            log.warning("shared prefix of %d tokens not cached (%s); generating without it", n, exc)
            return None, 0.0
        return (first[:n], kv), time.perf_counter() - started

    def generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, GenResult]]:
        tok = self.tokenizer()
        prompts = [self.render_prompt(r.messages) for r in requests]
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # Longest first: similar lengths share a batch (less padding), and memory trouble shows at once.
        order = sorted(range(len(requests)), key=lambda i: (-len(ids[i]), i))
        groups: dict[str, list[int]] = {}
        for i in order:
            constrained = requests[i].json_schema is not None
            groups.setdefault(requests[i].params.model_dump_json() + str(constrained), []).append(i)
        for members in groups.values():
            params = requests[members[0]].params
            size = self.batch_size(len(ids[members[0]]) + params.max_new_tokens)  # the group's longest first
            constrained = requests[members[0]].json_schema is not None  # no shared-prefix shortcut for these
            prefix, prefix_s = (None, 0.0) if constrained else self._shared_prefix([ids[i] for i in members])
            # The prefix is computed once; its time is shared out in compute_s (cost), and added in full to every
            # batch's latency, as a request with a cold prefix cache would wait for it (conservative).
            start = 0
            while start < len(members):
                batch = members[start : start + min(size, self._oom_cap or size)]
                if constrained:
                    yield from self._answer(
                        batch, ids, prompts, params, schemas=[requests[i].json_schema for i in batch]
                    )
                else:
                    yield from self._answer(batch, ids, prompts, params, prefix, prefix_s, len(members))
                start += len(batch)

    def _answer(
        self, batch, ids, prompts, params, prefix=None, prefix_s=0.0, group=1, schemas=None
    ) -> Iterator[tuple[int, GenResult]]:
        try:
            texts, counts, wall = self._run_batch([ids[i] for i in batch], params, prefix, schemas)
        except Exception as exc:  # one bad request must not sink the batch: retry them one by one
            if len(batch) == 1:
                yield (
                    batch[0],
                    GenResult(
                        text=None,
                        prompt=prompts[batch[0]],
                        input_tokens=len(ids[batch[0]]),
                        error=f"{type(exc).__name__}: {exc}",
                    ),
                )
                return
            if _out_of_memory(exc):  # too big a batch, not a bad request: halve it, and cap the later ones
                import gc

                import torch

                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self._oom_cap = max(1, len(batch) // 2)
                log.warning("batch of %d ran out of memory; generating in batches of %d", len(batch), self._oom_cap)
                done = 0
                while done < len(batch):  # the cap may fall again inside a part
                    n = min(self._oom_cap, len(batch) - done)
                    yield from self._answer(
                        batch[done : done + n],
                        ids,
                        prompts,
                        params,
                        prefix,
                        prefix_s,
                        group,
                        schemas[done : done + n] if schemas else None,
                    )
                    done += n
                return
            log.warning("batch of %d failed (%s); retrying one by one", len(batch), exc)
            for n, i in enumerate(batch):
                yield from self._answer(
                    [i], ids, prompts, params, prefix, prefix_s, group, [schemas[n]] if schemas else None
                )
            return
        for i, text, n in zip(batch, texts, counts, strict=True):
            yield (
                i,
                GenResult(
                    text=cut_at_stop(text, params.stop),
                    input_tokens=len(ids[i]),
                    output_tokens=n,
                    latency_s=wall + prefix_s,
                    compute_s=wall / len(batch) + prefix_s / group,
                    batch_size=len(batch),
                    prompt=prompts[i],
                    latency_kind="batch_wall",
                ),
            )
