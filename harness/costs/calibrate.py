"""How fast this machine runs a local model, measured once and kept: what `harness estimate` turns into predicted
wall time and dollars for local work before any run.

Generation: one batch at the suite's batch size and prompt length, timed as a prefill (prompt tokens per second)
and a few decode steps (seconds per step of the whole batch). Training: eight steps of the local tuner itself on
examples drawn evenly from the suite's train split (same batch size, sequence lengths and settings); the median
step after the first, which carries one-off warm-up. Indexing: the embedder encoding a block of texts as long as the suite's chunks.

Kept in $HARNESS_HOME/calibration.json, keyed by the model (its identity: path or hub id and content hash), the
device, the precision, the batch size and a bucket of the lengths. A figure measured under another torch or
transformers version is measured again (and the log says so): speed moves between versions.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from pydantic import Field

from harness.costs.tokens import chars_to_tokens
from harness.home import harness_home
from harness.records.base import Record

log = logging.getLogger(__name__)
VERSION = 3  # of the measurements below: a change makes earlier figures stale


class GenerationSpeed(Record):
    """One model on one device: prompt tokens per second (prefill) and seconds per decode step of a whole batch."""

    prefill_tok_s: float
    step_s: float
    batch: int
    context_tokens: int
    measured_s: float = 0.0  # what measuring took

    def answer_s(self, n: int, prompt_tokens: float, shared_tokens: float, steps: float, batch: int) -> float:
        """Wall time to answer `n` requests of `prompt_tokens` (`shared_tokens` of them a prefix every request
        shares, computed once), `steps` decode steps a batch (it runs until its longest answer ends)."""
        if n <= 0:
            return 0.0
        batches = math.ceil(n / batch)
        own = max(prompt_tokens - shared_tokens, 1.0)
        return shared_tokens / self.prefill_tok_s + n * own / self.prefill_tok_s + batches * steps * self.step_s


class TrainingSpeed(Record):
    """Seconds per optimizer step of the local tuner at the suite's batch and sequence lengths."""

    step_s: float
    batch: int
    tokens_per_step: float
    measured_s: float = 0.0


class EmbeddingSpeed(Record):
    texts_per_s: float
    chars_per_text: float
    measured_s: float = 0.0


class Calibrated(Record):
    kind: str  # generation, training, embedding
    versions: dict[str, str]
    figures: dict[str, Any]
    measured_at: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))


def versions() -> dict[str, str]:
    import torch
    import transformers

    return {"calibration": str(VERSION), "torch": torch.__version__, "transformers": transformers.__version__}


def bucket(n: float) -> int:
    """Lengths rounded up to a power of two: a calibration serves suites of similar lengths."""
    return 1 << max(math.ceil(math.log2(max(n, 1))), 4)


class CalibrationStore:
    """$HARNESS_HOME/calibration.json: measured figures by key, each with the versions it was measured under."""

    def __init__(self) -> None:
        self.path = harness_home() / "calibration.json"
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def get(self, key: str) -> dict[str, Any] | None:
        found = self.data.get(key)
        if found is None:
            return None
        now = versions()
        if found.get("versions") != now:
            was = found.get("versions", {})
            changed = ", ".join(f"{k} {was.get(k, '?')} -> {v}" for k, v in now.items() if was.get(k) != v)
            log.warning("calibration %s was measured under other versions (%s): measuring again", key, changed)
            return None
        return found["figures"]

    def put(self, key: str, kind: str, figures: dict[str, Any]) -> None:
        self.data[key] = Calibrated(kind=kind, versions=versions(), figures=figures).model_dump(mode="json")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)


def _key(kind: str, identity: dict[str, Any], **shape: Any) -> str:
    model = {k: identity.get(k) for k in ("kind", "model", "model_sha", "adapter_sha", "device", "dtype")}
    return json.dumps({"kind": kind, "model": model, **shape}, sort_keys=True)


GENERATION_STEPS = 6  # new tokens per calibration batch


def generation_speed(
    backend, prompt_tokens: float, store: CalibrationStore | None = None, measure: bool = True
) -> GenerationSpeed | None:
    """The hf backend's generation speed at its batch size and about `prompt_tokens` of context (None: not
    calibrated yet and `measure` is off)."""
    store = store or CalibrationStore()
    context = bucket(prompt_tokens)
    batch = backend.batch_size(context + GENERATION_STEPS)
    key = _key("generation", backend.identity(), batch=batch, context=context)
    found = store.get(key)
    if found is not None:
        return GenerationSpeed.model_validate(found)
    if not measure:
        return None
    log.info("calibrating %s: generation at batch %d, %d prompt tokens (once)", backend.spec.name, batch, context)
    speed = _measure_generation(backend, batch, context)
    store.put(key, "generation", speed.model_dump(mode="json"))
    return speed


def _measure_generation(backend, batch: int, context: int, steps: int = GENERATION_STEPS) -> GenerationSpeed:
    import torch

    started = time.perf_counter()
    model, tok = backend.model(), backend.tokenizer()
    device = backend.device
    high = min(len(tok), 30_000)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(200, high, (batch, context), generator=generator).to(device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    import inspect

    forward = getattr(model, "get_base_model", lambda: model)().forward
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(forward).parameters else {}
    with torch.inference_mode():
        model(input_ids=ids[:1, :16])  # warm-up: the first call carries one-off work
        best_prefill = best_step = math.inf
        for _ in range(2):
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, **keep_last)  # as generate prefills: the last logits only
            sync()
            best_prefill = min(best_prefill, time.perf_counter() - t0)
            cache, nxt = out.past_key_values, ids[:, -1:]
            t1 = time.perf_counter()
            for _ in range(steps):
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
            sync()
            best_step = min(best_step, (time.perf_counter() - t1) / steps)
    return GenerationSpeed(
        prefill_tok_s=batch * context / best_prefill,
        step_s=best_step,
        batch=batch,
        context_tokens=context,
        measured_s=round(time.perf_counter() - started, 2),
    )


def training_speed(strategy, store: CalibrationStore | None = None, measure: bool = True) -> TrainingSpeed | None:
    """Eight steps of the finetune strategy's local tuner on examples drawn evenly from its train split (None: not
    a local tuner)."""
    store = store or CalibrationStore()
    tuner, examples = strategy.make_tuner()
    if getattr(tuner, "kind", None) != "local" or not hasattr(tuner, "step_times"):
        return None
    batch = int(getattr(tuner.config, "batch_size", 8))
    # the key's length bucket from characters: a compare that only reads the calibration tokenizes nothing
    chars = sum(len(m["content"]) for e in examples for m in e.prompt) + sum(len(e.completion) for e in examples)
    per_example = chars_to_tokens(chars / max(len(examples), 1))
    shape = {k: v for k, v in tuner.config.model_dump(mode="json").items() if k not in ("epochs", "learning_rate")}
    key = _key("training", strategy.ctx.backend.identity(), tuner=shape, tokens=bucket(per_example), batch=batch)
    found = store.get(key)
    if found is not None:
        return TrainingSpeed.model_validate(found)
    if not measure:
        return None
    log.info("calibrating %s: eight training steps at batch %d (once)", strategy.spec.name, batch)
    want = batch * 8
    spread = examples[:: max(len(examples) // want, 1)][:want] if len(examples) > want else examples
    speed = _measure_training(tuner, spread, batch, per_example)
    if speed is not None:
        store.put(key, "training", speed.model_dump(mode="json"))
    return speed


def short_run(tuner, examples, **config) -> tuple[list[float], list[float]]:
    """The tuner's training on `examples` for one epoch in a scratch folder, with `config` changed (e.g.
    precision); each optimizer step's seconds and logged loss."""
    import shutil
    import tempfile
    from pathlib import Path

    work = Path(tempfile.mkdtemp(prefix="harness-calibrate-"))
    saved = tuner.ctx.workdir, tuner.ctx.progress, tuner.ctx.on_checkpoint, tuner.config
    steps: list[float] = []
    losses: list[float] = []
    try:
        tuner.ctx.workdir, tuner.ctx.progress, tuner.ctx.on_checkpoint = work, None, None
        tuner.config = tuner.config.model_copy(update={"epochs": 1, **config})  # config may set epochs
        tuner.step_times, tuner.step_losses = steps, losses  # filled by the tuner's step recorder
        tuner.train(examples, tuner.validate(examples))
    finally:
        tuner.ctx.workdir, tuner.ctx.progress, tuner.ctx.on_checkpoint, tuner.config = saved
        tuner.step_times = tuner.step_losses = None
        shutil.rmtree(work, ignore_errors=True)
    return steps, losses


def _median_after_first(steps: list[float]) -> float | None:
    timed = sorted(steps[1:] or steps)
    return timed[len(timed) // 2] if timed else None


def _measure_training(tuner, examples, batch: int, per_example: float) -> TrainingSpeed | None:
    started = time.perf_counter()
    if len(examples) < batch * 2:
        return None
    steps, _ = short_run(tuner, examples)
    step_s = _median_after_first(steps)
    if step_s is None:
        return None
    return TrainingSpeed(
        step_s=step_s,
        batch=batch,
        tokens_per_step=per_example * batch,
        measured_s=round(time.perf_counter() - started, 2),
    )


def cpu_bf16() -> str | None:
    """The CPU's bf16 instructions (AMX or AVX512-BF16) when it has them (Linux: /proc/cpuinfo), else None."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return None
    if "amx_bf16" in flags:
        return "AMX"
    return "AVX512-BF16" if "avx512_bf16" in flags else None


class PrecisionChoice(Record):
    """The hf backend's answering precision on a CPU with bf16 instructions (`dtype: auto`): bf16 when its greedy
    answers on the suite's dev cases match fp32's closely enough, else fp32."""

    dtype: str
    why: str
    cases: int = 0
    agreeing: int = 0  # cases with the same answer, or the same primary score
    fp32_s: float | None = None
    bf16_s: float | None = None


PARITY_CASES = 16


def answer_precision(backend, loaded, store: CalibrationStore | None = None, measure: bool = True) -> None:
    """Settle an hf backend's `dtype: auto` on a CPU with AMX or AVX512-BF16 (where bf16 prefill ran 2-2.7x faster
    than fp32 here): answer the first dev (else train) cases' plain task prompts greedily in both, and answer in
    bf16 when at least `bf16_parity` of them agree (the same text, or the same score from the suite's primary
    scorer when it needs no judge). Both timings are kept beside the choice. The choice is kept with the
    calibration (keyed by model and prompts) and set on `backend.precision`; nothing happens elsewhere."""
    import hashlib

    from harness.backends.base import GenRequest
    from harness.backends.hf import HFBackend, pick_device
    from harness.suite.prompts import build_messages

    if not isinstance(backend, HFBackend) or backend.config.dtype != "auto" or backend.config.adapter:
        return
    if pick_device(backend.config.device) != "cpu" or (instructions := cpu_bf16()) is None:
        return
    cases = (loaded.dataset.dev or loaded.dataset.train)[:PARITY_CASES]
    params = backend.spec.generation.model_copy(update={"temperature": 0.0})
    requests = [GenRequest(build_messages(loaded.suite.task, c), params) for c in cases]
    if not requests:
        backend.precision = PrecisionChoice(dtype="float32", why="no dev or train cases to check bf16 answers on")
        return
    store = store or CalibrationStore()
    prompts = hashlib.sha256(json.dumps([r.messages for r in requests], sort_keys=True).encode()).hexdigest()[:16]
    key = _key("precision", backend.identity(), prompts=prompts, parity=backend.config.bf16_parity, agree="score", v=2)
    found = store.get(key)
    if found is None and not measure:
        return
    if found is not None:
        choice = PrecisionChoice.model_validate(found)
    else:
        log.info(
            "%s: checking bf16 answers against fp32 on %d cases (this CPU has %s; once per model and task)",
            backend.spec.name,
            len(requests),
            instructions,
        )
        bf16 = HFBackend(backend.spec, backend.config.model_copy(update={"dtype": "bfloat16"}))
        texts, seconds = [], []
        for model in (backend, bf16):
            model.load()  # weights and warm-up outside the timing
            started = time.perf_counter()
            texts.append([r.text for _, r in sorted(model.generate(requests), key=lambda x: x[0])])
            seconds.append(time.perf_counter() - started)
        bf16.close()
        scorer = _primary_scorer(loaded)
        same = sum(
            a == b or (scorer is not None and scorer.score(a or "", c).value == scorer.score(b or "", c).value)
            for a, b, c in zip(*texts, cases, strict=True)
        )
        n, fp32_s, bf16_s = len(requests), seconds[0], seconds[1]
        agree = f"the same answer or the same {scorer.name} score" if scorer else "the same answer"
        basis = f"bf16 gave {agree} as fp32 on {same} of {n} dev cases, in {bf16_s:.1f} s against {fp32_s:.1f} s"
        # Decided on the answers alone, never on the two timings: a choice that flipped with machine load would
        # make two runs of one suite answer in different precisions.
        if same / n >= backend.config.bf16_parity:
            dtype, why = "bfloat16", f"this CPU has {instructions}: {basis}"
        else:
            dtype, why = "float32", f"{basis}: below bf16_parity {backend.config.bf16_parity:g}, so fp32"
        choice = PrecisionChoice(
            dtype=dtype, why=why, cases=n, agreeing=same, fp32_s=round(fp32_s, 3), bf16_s=round(bf16_s, 3)
        )
        store.put(key, "precision", choice.model_dump(mode="json"))
    log.info("%s answers in %s: %s", backend.spec.name, choice.dtype, choice.why)
    backend.use_dtype(choice.dtype)
    backend.precision = choice


def _primary_scorer(loaded):
    """The suite's primary scorer when it scores an answer on its own (no judge model, not conditional), else None."""
    from harness.builtins import SCORERS

    for spec in loaded.suite.scorers:
        if spec.label == loaded.suite.primary_metric:
            cls = SCORERS.get(spec.kind)
            if cls.deferred or cls.conditional:
                return None
            return cls(spec, loaded.config("scorers", spec.label), loaded.suite.task)
    return None


def embedding_speed(
    embedder, chars_per_text: float, store: CalibrationStore | None = None, measure: bool = True
) -> EmbeddingSpeed | None:
    """The local embedder encoding a block of texts `chars_per_text` long."""
    store = store or CalibrationStore()
    key = _key("embedding", embedder.identity(), chars=bucket(chars_per_text))
    found = store.get(key)
    if found is not None:
        return EmbeddingSpeed.model_validate(found)
    if not measure:
        return None
    started = time.perf_counter()
    embedder.warm()
    n = 64
    words = max(int(chars_per_text / 6), 1)
    texts = [" ".join(f"word{i}x{j}" for j in range(words)) for i in range(n)]
    embedder.encode(texts[:4])
    t0 = time.perf_counter()
    embedder.encode(texts)
    speed = EmbeddingSpeed(
        texts_per_s=n / (time.perf_counter() - t0),
        chars_per_text=chars_per_text,
        measured_s=round(time.perf_counter() - started, 2),
    )
    store.put(key, "embedding", speed.model_dump(mode="json"))
    return speed
