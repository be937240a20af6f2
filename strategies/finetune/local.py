"""The `local` tuner: LoRA, QLoRA or full fine-tuning with trl's SFTTrainer and peft, on CPU or GPU.

Settings follow the device: on CPU fp32, no gradient checkpointing (trl's bf16 + checkpointing defaults are ~15x
slower there) and padded batches with a shared-prefix step unless packed rows compute fewer tokens; on GPU bf16,
padding-free rows, and checkpointing and micro-batches only where the memory needs them (strategies/finetune/memory.py).
One checkpoint per epoch; a rerun resumes from the last checkpoint in the work folder. Loss is on the answer only
(prompt-completion data). The trainer callbacks (progress, early stop, elapsed time) are in callbacks.py.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.backends.hf import HFBackend, cache_kwarg, pick_device
from harness.errors import ConfigError, HarnessError, require
from harness.tuner import Preflight, TrainExample, TuneResult, TunerStats
from strategies.finetune.callbacks import (
    early_stop_callback,
    elapsed_before,
    elapsed_callback,
    progress_callback,
    step_recorder,
)
from strategies.finetune.common import AdapterConfig, TrainerTuner, cuda_problem, serve_prompt_ids
from strategies.finetune.memory import MemoryPlan, memory_plan

log = logging.getLogger(__name__)


class LocalConfig(AdapterConfig):
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 mixed precision on GPU, fp32 on CPU (bf16 on a CPU with AMX or AVX512-BF16 was not "
        "faster for whole trainings here; precision: bf16 tries it).",
    )
    gradient_checkpointing: bool | None = Field(
        None,
        description="Default: off on CPU; on a GPU, on only when the batch does not fit in the memory left after "
        "the weights without it (measured when training starts).",
    )
    padding_free: bool | None = Field(
        None,
        description="Pack each batch's examples into one row without padding, attention kept within each example "
        "(position ids: FlashAttention's varlen kernel when installed, else a block-diagonal mask). Default: on for "
        "GPUs when nothing is truncated; on CPU, when it computes fewer tokens than padded batches with the "
        "shared-prefix step.",
    )
    fused_kernels: bool | None = Field(
        None,
        description="Liger's fused kernels (RMSNorm, SwiGLU, RoPE, linear cross-entropy without materialised "
        "logits) when liger-kernel is installed. Default: on for GPUs where it is installed.",
    )
    num_processes: int = Field(
        1, ge=1, le=256, description="More than 1: train under `accelerate launch` (DDP or FSDP)."
    )
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp", description="How several processes share the work (fsdp needs GPUs)."
    )
    shared_prefix: bool = Field(
        True,
        description="Compute the prompt prefix a batch shares (instructions) once per step instead of once per example.",
    )


MIN_SHARED_PREFIX = 16
PACKING_MARGIN = 1.5  # packed rows on CPU pay a block-diagonal attention mask over the whole row; padded do not


def split_shared_prefix(model, inputs: dict[str, Any], *, cache_kwarg: str) -> dict[str, Any]:
    """Rewrite a padded training batch so the prompt prefix all its rows share is computed once.

    The prefix (identical ids, no padding, no loss) goes through the model as a batch of one with gradients on;
    its KV cache is repeated across the batch and the rows continue from it. The loss and gradients are those of
    the full batch (the repeat sums the prefix's gradient over the rows); only the duplicated work is gone.
    """
    ids, labels, mask = inputs["input_ids"], inputs["labels"], inputs.get("attention_mask")
    core = getattr(model, "module", model)
    sharded = "FullyShardedDataParallel" in type(model).__name__ or "FSDP" in type(model).__name__
    if (
        ids.shape[0] < 2
        or mask is None
        or "position_ids" in inputs
        or sharded
        or getattr(core, "is_gradient_checkpointing", False)
    ):
        # Gradient checkpointing drops a passed-in cache inside the checkpointed layers, so the rows would lose
        # their prompt; FSDP must run its root module to gather weights; padding-free batches have no padding
        # rows to share from. The shortcut is only taken where it is exact.
        return inputs
    shared = (ids == ids[:1]).all(0) & (mask == 1).all(0) & (labels == -100).all(0)
    # Keep one shared position in the suffix: its label (the first suffix token's target) is still -100.
    prefix = int(shared.long().cumprod(0).sum()) - 1
    if prefix < MIN_SHARED_PREFIX:
        return inputs
    from transformers import DynamicCache

    # Under DDP the prefix runs through the wrapped module: its gradients still reach the same parameters and are
    # summed by autograd before DDP's one all-reduce per parameter.
    cache = DynamicCache(config=core.config)
    core(input_ids=ids[:1, :prefix], attention_mask=mask[:1, :prefix], use_cache=True, **{cache_kwarg: cache})
    cache.batch_repeat_interleave(ids.shape[0])
    return {**inputs, "input_ids": ids[:, prefix:], "labels": labels[:, prefix:], cache_kwarg: cache}


def _trainer_class(shared_prefix: bool):
    from trl import SFTTrainer

    if not shared_prefix:
        return SFTTrainer

    class SharedPrefixSFTTrainer(SFTTrainer):
        """trl's SFTTrainer, computing each batch's shared prompt prefix once (see split_shared_prefix)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                inputs = split_shared_prefix(model, inputs, cache_kwarg=cache_kwarg(model))
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return SharedPrefixSFTTrainer


def _trl_fused_lm_head() -> bool:
    import trl.trainer.utils

    return hasattr(trl.trainer.utils, "add_fused_lm_head")


def _has_flash_attention() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def _reset_peak_memory(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    else:
        with contextlib.suppress(OSError):  # Linux: "5" resets the process's peak RSS (VmHWM): training's own peak
            Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb(device: str) -> tuple[float, str]:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20, "cuda allocated during training"
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "process peak RSS during training (other loaded models included)"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def check_parity(backend: HFBackend, rows, *, sample: int = 16) -> None:
    """Fail loudly if the prompt part of a training sequence differs from what inference sends.

    `rows` are the trainer's tokenised examples (each keeps its `prompt` messages and `input_ids`)."""
    for i in range(min(sample, len(rows))):
        row = rows[i]
        ex, ids = TrainExample(id=f"row {i}", prompt=row["prompt"], completion=""), row["input_ids"]
        serve = serve_prompt_ids(backend, ex.prompt)
        if ids[: len(serve)] != serve:
            at = next((j for j, (a, b) in enumerate(zip(ids, serve, strict=False)) if a != b), len(serve))
            tok = backend.tokenizer()
            raise HarnessError(
                f"prompt parity check failed for example '{ex.id}': training and inference tokenise the prompt "
                f"differently from token {at} ({tok.decode(ids[at : at + 8])!r} vs {tok.decode(serve[at : at + 8])!r}). "
                "The fine-tuned model would be served a prompt it never saw. Fix: report this with the model name."
            )


class LocalTuner(TrainerTuner):
    kind = "local"
    Config = LocalConfig

    @classmethod
    def check(cls, config: LocalConfig):
        problems = []
        if config.method == "qlora" and config.device in ("cpu", "mps"):
            problems.append(
                (("method",), "qlora needs a CUDA GPU with bitsandbytes. Fix: use method: lora on this device.")
            )
        if config.distributed == "fsdp" and config.num_processes > 1 and config.device in ("cpu", "mps"):
            problems.append((("distributed",), "fsdp needs CUDA GPUs. Fix: use distributed: ddp on CPUs."))
        return problems

    @classmethod
    def machine_check(cls, config: LocalConfig):
        if config.method == "qlora" and config.device == "auto":  # only qlora suites: validate stays free of torch
            problem = cuda_problem("qlora (4-bit with bitsandbytes)", "use method: lora on this machine.")
            if problem:
                return [(("config", "method"), problem)]
        return []

    # ---- training --------------------------------------------------------------------------------

    def _device(self) -> str:
        device = pick_device(self.config.device)
        if self.config.method == "qlora" and device != "cuda":
            raise ConfigError(
                "method qlora needs a CUDA GPU with bitsandbytes; none is available here. Fix: use method: lora."
            )
        return device

    def _model(self, device: str):
        import torch
        from transformers import AutoModelForCausalLM

        # fp32 weights on CPU, for full fine-tuning (the trained weights are the master copy) and when asked;
        # otherwise bf16 on GPUs for the frozen base, with peft keeping the adapter in fp32.
        fp32 = device == "cpu" or self.config.method == "full" or self.config.precision == "fp32"
        kwargs: dict[str, Any] = {"dtype": torch.float32 if fp32 else torch.bfloat16}
        if self.config.method == "qlora":
            require("bitsandbytes", extra="local", purpose="qlora")
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            )
        if device == "cuda":
            kwargs["attn_implementation"] = "flash_attention_2" if _has_flash_attention() else "sdpa"
        return AutoModelForCausalLM.from_pretrained(self.ctx.base_source, **kwargs)

    _precision: tuple[str, str] = ("fp32", "")

    def _choose_precision(self, device: str, examples: list[TrainExample]) -> tuple[str, str]:
        """fp32 or bf16 (mixed precision), and why. `auto`: bf16 on GPUs, fp32 on CPUs. On a CPU with bf16
        instructions a 16-step run of each showed bf16 1.5x faster, but whole trainings of the default suite did
        not (436 against 462 tokens/s, the same accuracy), so bf16 on CPU is left to `precision: bf16`."""
        asked = self.config.precision
        if asked != "auto":
            return asked, f"precision: {asked} in the tuner's config"
        if device == "cuda":
            return "bf16", "a GPU: bf16 mixed precision"
        if device != "cpu":
            return "fp32", f"fp32 on {device}"
        from harness.costs import calibrate

        instructions = calibrate.cpu_bf16()
        if instructions is None:
            return "fp32", "a CPU without bf16 instructions (AMX, AVX512-BF16)"
        return "fp32", f"fp32 on CPU; this CPU has {instructions}: precision: bf16 trains in bf16 mixed precision"

    _plan: MemoryPlan | None = None

    _packing: tuple[bool, str] = (False, "")

    def _choose_packing(self, device: str, pre: Preflight, examples: list[TrainExample]) -> tuple[bool, str]:
        """Padding-free rows or padded batches, and why. trl cannot enforce max_length on padding-free rows, so only
        when nothing is truncated. GPUs: padding-free. CPUs: whichever computes fewer tokens for these examples:
        padded batches as the length-grouped sampler forms them, each batch's shared prompt prefix once (the
        shared-prefix step), against every example's tokens packed (measured here: 2.3x faster padded on the short,
        prefix-sharing default suite; 2.7x faster packed on prompts of 64 to 1,024 tokens)."""
        asked = self.config.padding_free
        if pre.n_truncated:
            return False, "padded: some examples are truncated, which padding-free rows cannot do"
        if asked is not None:
            return asked, f"padding_free: {str(asked).lower()} in the tuner's config"
        if device != "cpu":
            return True, f"{device}: padding-free rows"
        packed, padded = self._token_work(examples)
        ratio = padded / max(packed, 1)
        if packed * PACKING_MARGIN < padded:
            return (
                True,
                f"padding-free: packed rows compute {packed:,} tokens an epoch, padded batches {ratio:.1f}x that",
            )
        return (
            False,
            f"padded batches compute {ratio:.2f}x the tokens of packed rows (shared prompt prefixes counted once)",
        )

    def _token_work(self, examples: list[TrainExample]) -> tuple[int, int]:
        """Tokens an epoch computes packed (every token once) and padded (each batch at its longest row, less the
        prompt prefix the batch shares, computed once), in the order the length-grouped sampler draws."""
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        backend = self._backend()
        tok = backend.tokenizer()
        rows = []
        for ex in examples:
            prompt = serve_prompt_ids(backend, ex.prompt)
            rows.append(prompt + tok(ex.completion, add_special_tokens=False)["input_ids"] + [0])
        batch = self.config.batch_size
        order = get_length_grouped_indices(
            [len(r) for r in rows], batch, generator=torch.Generator().manual_seed(self.ctx.seed)
        )
        padded = 0
        for start in range(0, len(order), batch):
            group = [rows[i] for i in order[start : start + batch]]
            longest, shared = max(map(len, group)), min(map(len, group)) - 1
            for row in group[1:]:
                shared = next((j for j in range(shared) if row[j] != group[0][j]), shared)
            if not self.config.shared_prefix or len(group) < 2 or shared < MIN_SHARED_PREFIX:
                shared = 0
            padded += shared + len(group) * (longest - shared)
        return sum(map(len, rows)), padded

    def _fused_kernels(self, device: str) -> bool:
        import importlib.util

        installed = importlib.util.find_spec("liger_kernel") is not None
        if self.config.fused_kernels and not installed:
            raise ConfigError("fused_kernels: true needs liger-kernel. Fix: pip install liger-kernel, or drop the key.")
        return installed and (self.config.fused_kernels if self.config.fused_kernels is not None else device == "cuda")

    def _memory_plan(self, device: str, model, pre: Preflight) -> MemoryPlan:
        """Micro-batch, accumulation and checkpointing: on a GPU from the memory free once the weights are loaded;
        on CPU the configured batch, without checkpointing (it only slows CPU training)."""
        batch, accumulation = self.config.batch_size, self.config.gradient_accumulation
        asked = self.config.gradient_checkpointing
        if device != "cuda":
            why = "as configured" if asked is not None else f"{device}: no checkpointing (it only slows training there)"
            return MemoryPlan(batch, accumulation, bool(asked), why)
        import torch

        free, _ = torch.cuda.mem_get_info()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad or self.config.method == "full")
        # Adam's two moments and the gradient, in fp32, for what is trained (LoRA: the adapters, added later: small)
        optimizer = 12 * trainable if self.config.method == "full" else 0
        return memory_plan(
            free,
            model.config,
            tokens_per_row=pre.max_length,
            batch=batch,
            accumulation=accumulation,
            dtype_bytes=2 if self._precision[0] == "bf16" else 4,
            lora_dropout=self.config.method != "full" and self.config.dropout > 0,
            # trl >= 1.16's SFTTrainer projects through the LM head in tiles, keeping no full logits; Liger fuses it
            fused_loss=_trl_fused_lm_head() or self._fused_kernels(device),
            optimizer_bytes=optimizer,
            asked_checkpointing=asked,
        )

    def _args(self, device: str, pre: Preflight):
        from trl import SFTConfig

        plan = self._plan or MemoryPlan(self.config.batch_size, self.config.gradient_accumulation, False, "")
        bf16 = self._precision[0] == "bf16"
        padding_free = self._packing[0]
        return SFTConfig(
            output_dir=str(self.ctx.workdir / "checkpoints"),
            num_train_epochs=self.config.epochs,
            per_device_train_batch_size=plan.micro_batch,
            gradient_accumulation_steps=plan.accumulation,
            learning_rate=self.config.learning_rate,
            lr_scheduler_type=self.config.lr_scheduler,
            warmup_steps=self.config.warmup_ratio,  # a float in [0, 1) is a fraction of all steps
            weight_decay=self.config.weight_decay,
            max_length=None if padding_free else pre.max_length,
            bf16=bf16,  # mixed precision: fp32 master weights, bf16 compute
            use_cpu=device == "cpu",
            gradient_checkpointing=plan.checkpointing,
            train_sampling_strategy="group_by_length",  # similar lengths per batch: less padding to compute
            padding_free=padding_free,
            use_liger_kernel=self._fused_kernels(device),
            logging_steps=1,
            save_strategy="epoch",
            report_to="none",
            seed=self.ctx.seed,
            data_seed=self.ctx.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )

    def _peft_config(self):
        if self.config.method == "full":
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.config.rank,
            lora_alpha=self.config.alpha,
            lora_dropout=self.config.dropout,
            target_modules=self.config.target_modules,
            task_type="CAUSAL_LM",
        )

    def train(self, examples: list[TrainExample], pre: Preflight) -> TuneResult:
        if self.config.num_processes > 1:
            from strategies.finetune.worker import launch

            return launch(self, examples, pre)
        return self.train_here(examples, pre)

    def train_here(self, examples: list[TrainExample], pre: Preflight, *, trainer_hook=None) -> TuneResult:
        """Train in this process (one of several when started by `accelerate launch`)."""
        # trl reads model.is_gradient_checkpointing, which transformers 5 deprecates: noise in every run's output
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        require("trl", extra="local", purpose="the local tuner")
        datasets = require("datasets", extra="local", purpose="the local tuner")
        device = self._device()
        self._precision = self._choose_precision(device, examples)
        data = datasets.Dataset.from_list(
            [{"prompt": ex.prompt, "completion": [{"role": "assistant", "content": ex.completion}]} for ex in examples]
        )
        trainer_class = _trainer_class(self.config.shared_prefix)
        model = self._model(device)
        self._plan = self._memory_plan(device, model, pre)
        self._packing = self._choose_packing(device, pre, examples)
        trainer = trainer_class(
            model=model,
            args=self._args(device, pre),
            train_dataset=data,
            processing_class=self._backend().tokenizer(),
            peft_config=self._peft_config(),
        )
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(progress_callback(self, pre, self.ctx.name))
        if self.step_times is not None:
            trainer.add_callback(step_recorder(self.step_times, self.step_losses))
        if self.ctx.on_checkpoint is not None:
            trainer.add_callback(early_stop_callback(self))
        check_parity(self._backend(), trainer.train_dataset)
        if trainer_hook is not None:
            trainer_hook(trainer)
        out = self.ctx.workdir / "checkpoints"
        self._set_aside_incomplete(out)
        resume = bool(self._checkpoint_folders())
        if resume:
            log.info("resuming training from the last checkpoint in %s", out)
        # First in line, so the time is written beside the checkpoint even if a later callback stops training.
        before = elapsed_before(self._checkpoint_folders()) if resume else 0.0
        trainer.callback_handler.callbacks.insert(0, elapsed_callback(before))
        _reset_peak_memory(device)
        started = time.perf_counter()
        try:
            trainer.train(resume_from_checkpoint=True if resume else None)
        except (KeyboardInterrupt, HarnessError):
            raise
        except Exception as exc:
            raise HarnessError(
                f"training stopped: {type(exc).__name__}: {exc}\nCheckpoints so far are kept in {out}; "
                "rerun the same command to resume from the last one."
            ) from exc
        wall = time.perf_counter() - started + before
        return TuneResult(
            checkpoints=self._checkpoints(),
            curve=self.curve_rows(trainer.state.log_history),
            stats=self._stats(trainer, device, wall, resume, pre),
        )

    def _set_aside_incomplete(self, out: Path) -> None:
        """A kill during a save leaves a checkpoint without its state; resuming from it would fail for good."""
        for folder in out.glob("checkpoint-*"):
            if not (folder / "trainer_state.json").exists():
                log.warning("setting aside the incomplete checkpoint %s", folder.name)
                folder.rename(folder.with_name(f"incomplete-{folder.name}-{time.time_ns()}"))

    def _stats(self, trainer, device: str, wall: float, resumed: bool, pre: Preflight) -> TunerStats:
        peak, kind = _peak_memory_mb(device)
        tokens = self.trained_tokens(pre, trainer.state.epoch)
        return TunerStats(
            wall_s=round(wall, 2),
            device=device,
            processes=self.config.num_processes,
            resumed=resumed,
            peak_memory_mb=round(peak, 1),
            peak_memory_kind=kind,
            steps=trainer.state.global_step,
            epochs=round(float(trainer.state.epoch or 0), 3),
            trained_tokens=tokens,
            train_tokens_per_s=round(tokens / wall, 1) if wall > 0 else None,
            wall_s_basis="training time summed over every process run that produced the checkpoints",
            precision=self._precision[0],
            precision_why=self._precision[1],
            micro_batch=self._plan.micro_batch if self._plan else None,
            gradient_checkpointing=self._plan.checkpointing if self._plan else None,
            memory_why=self._plan.why if self._plan else None,
            padding_free=self._packing[0],
            padding_free_why=self._packing[1],
            fused_kernels=self._fused_kernels(device),
            device_hours=round(wall / 3600 * (self.config.num_processes if device == "cuda" else 1), 9),
        )
