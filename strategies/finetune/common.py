"""What the tuners that train an open model with a Hugging Face Trainer share, wherever the Trainer runs (this
process, `accelerate launch`, Unsloth's process, AutoTrain's process): the config keys, the data check with the
base model's tokenizer, and the artifact contract, i.e. one `checkpoint-<step>` folder per epoch holding an adapter
(or full weights) and the Trainer's `trainer_state.json`, which the finetune strategy scores on dev.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.backends.hf import HFBackend, HFConfig
from harness.errors import HarnessError
from harness.suite.schema import StrictModel
from harness.tuner import Checkpoint, Preflight, TrainExample, Tuner
from strategies.finetune.preflight import preflight

log = logging.getLogger(__name__)

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class AdapterConfig(StrictModel):
    """Keys every Trainer-based tuner reads the same way, so a suite switches tuner by changing `kind` only."""

    method: Literal["lora", "qlora", "full"] = "lora"
    epochs: int = Field(3, ge=1, le=50, description="Each epoch ends in a checkpoint scored on dev; the best is kept.")
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    batch_size: int = Field(8, ge=1, le=1024)
    gradient_accumulation: int = Field(1, ge=1, le=1024)
    rank: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    alpha: int = Field(32, ge=1, le=4096, description="LoRA alpha.")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    max_length: int | None = Field(None, ge=8, description="Default: the longest example, so nothing is truncated.")
    max_truncated_fraction: float = Field(
        0.0, ge=0, le=1, description="Refuse when more examples than this would be cut."
    )
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)


def serve_prompt_ids(backend: HFBackend, prompt: list[dict[str, str]]) -> list[int]:
    """Token ids of a prompt exactly as the hf backend sends it at inference."""
    return backend.tokenizer()(backend.render_prompt(prompt), add_special_tokens=False)["input_ids"]


def cuda_visible() -> bool:
    try:
        import torch
    except ImportError:  # no torch here at all: no GPU it could use
        return False
    return bool(torch.cuda.is_available())


def cuda_problem(engine: str, alternative: str) -> str | None:
    """Why `engine` cannot run here (no NVIDIA GPU), or None when one is visible."""
    if cuda_visible():
        return None
    return f"{engine} needs an NVIDIA GPU (CUDA) and none is visible on this machine. Fix: {alternative}"


class TrainerTuner(Tuner):
    """Base of the tuners whose result is a folder of Trainer checkpoints (see the module docstring)."""

    Config = AdapterConfig
    step_times: list[float] | None = None  # when a list: each optimizer step's seconds go into it (calibration)
    step_losses: list[float] | None = None  # and each logged training loss

    def _backend(self) -> HFBackend:
        if not hasattr(self, "_serve"):
            base = self.ctx.base
            self._serve = HFBackend(base, HFConfig.model_validate(base.config))
        return self._serve

    def _count(self, ex: TrainExample) -> int:
        tok = self._backend().tokenizer()
        text = tok.apply_chat_template(ex.prompt + [{"role": "assistant", "content": ex.completion}], tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def validate(self, examples: list[TrainExample]) -> Preflight:
        tok = self._backend().tokenizer()
        cap = min(getattr(tok, "model_max_length", 4096) or 4096, 8192)
        return preflight(
            examples,
            self._count,
            max_length=self.config.max_length,
            cap=cap,
            max_truncated_fraction=self.config.max_truncated_fraction,
            count_prompt=lambda ex: len(serve_prompt_ids(self._backend(), ex.prompt)),
        )

    def estimate(self, pre: Preflight) -> dict[str, Any]:
        per_step = self.config.batch_size * self.config.gradient_accumulation
        steps = math.ceil(pre.n_examples / per_step) * self.config.epochs
        return {
            "steps": steps,
            "epochs": self.config.epochs,
            "trained_tokens": int(pre.token_lengths.p50 * pre.n_examples * self.config.epochs),
        }

    # ---- the artifact contract -------------------------------------------------------------------

    @property
    def checkpoint_root(self) -> Path:
        return self.ctx.workdir / "checkpoints"

    def _checkpoint_folders(self) -> list[Path]:
        folders = [p for p in self.checkpoint_root.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
        return sorted(folders, key=lambda p: int(p.name.split("-")[1]))

    def status(self) -> str:
        if (self.ctx.workdir / "result.json").exists():
            return "succeeded"
        return "running_or_interrupted" if self._checkpoint_folders() else "not_started"

    def events(self) -> list[dict[str, Any]]:
        folders = self._checkpoint_folders()
        if not folders:
            return []
        return json.loads((folders[-1] / "trainer_state.json").read_text()).get("log_history", [])

    def _checkpoints(self) -> list[Checkpoint]:
        found = []
        for folder in self._checkpoint_folders():
            state = json.loads((folder / "trainer_state.json").read_text())
            lora = self.config.method != "full"
            found.append(
                Checkpoint(
                    epoch=round(float(state["epoch"]), 3),
                    step=int(state["global_step"]),
                    backend_kind="hf",
                    model=self.ctx.base.model if lora else str(folder),
                    adapter=str(folder) if lora else None,
                )
            )
        return found

    @staticmethod
    def curve_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keep = ("step", "epoch", "loss", "learning_rate", "grad_norm", "num_tokens", "mean_token_accuracy")
        return [{k: h[k] for k in keep if k in h} for h in log_history if "loss" in h]

    def trained_tokens(self, pre: Preflight, epochs: float | None = None) -> int:
        """Every example once per epoch, padding excluded (`epochs`: as trained, when it stopped early)."""
        return int(pre.total_tokens * (self.config.epochs if epochs is None else epochs))


def run_logged(
    cmd: list[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    what: str,
    progress=lambda line: False,
    cwd: Path | None = None,
    timeout_s: float | None = None,
) -> int:
    """Run an external trainer, keeping its whole output in `log_path` and passing its progress lines (and every
    error line) to our log, so `harness compare` shows it advancing and a failure's cause is one file away."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )  # its own group: a stop reaches the trainers it starts
        except OSError as exc:
            raise HarnessError(
                f"{what}: cannot start {cmd[0]}: {exc}. Fix: check the path in the tuner's config."
            ) from exc
        timer = threading.Timer(timeout_s, _stop, (proc,)) if timeout_s else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                text = line.rstrip()
                if progress(text) or "Error" in text or "error:" in text:
                    log.info("%s: %s", what, text[-300:])
            code = proc.wait()
            if timer and not timer.is_alive() and code != 0:
                out.write(f"\nstopped by harness after timeout_s={timeout_s}\n")
                log.error("%s: stopped after timeout_s=%s", what, timeout_s)
            return code
        except BaseException:
            _stop(proc)  # Ctrl-C or a failure here: the child must not keep training (and holding a GPU) alone
            raise
        finally:
            if timer:
                timer.cancel()


def _stop(proc: subprocess.Popen) -> None:
    """Stop the child and everything it started (AutoTrain runs `accelerate launch`, which runs the trainer)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
