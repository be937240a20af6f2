"""`unsloth` tuner: LoRA / QLoRA through Unsloth's patched kernels on an NVIDIA GPU.

Same config keys as the `local` tuner (strategies.finetune.common.AdapterConfig) and the same artifact contract:
one checkpoint folder per epoch holding a peft adapter, scored on dev by the finetune strategy and served by
the hf backend, so evaluation, costs and the decision do not depend on which engine trained.

Training runs in a child process (unsloth_train.py) with the interpreter named by `python` (default: this
one), because Unsloth must be imported before transformers and pins its own trl/transformers versions. A rerun
resumes from the last checkpoint. Without a CUDA GPU the suite is refused before anything runs, naming `local`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from harness.errors import HarnessError
from harness.tuner import Preflight, TrainExample, TuneResult, TunerStats
from strategies.finetune.common import DEFAULT_LORA_TARGETS, AdapterConfig, TrainerTuner, cuda_problem, run_logged

log = logging.getLogger(__name__)
SCRIPT = Path(__file__).with_name("unsloth_train.py")


class UnslothConfig(AdapterConfig):
    method: Literal["lora", "qlora"] = Field("lora", description="qlora loads the base in 4 bits (bitsandbytes).")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (0 takes Unsloth's fast path).")
    gradient_checkpointing: Literal["unsloth"] | bool = Field(
        "unsloth", description="unsloth: its offloaded checkpointing (long sequences in less memory); or true/false."
    )
    optimizer: str = Field("adamw_8bit", description="A transformers `optim` name, e.g. adamw_8bit, adamw_torch.")
    python: str | None = Field(
        None, description="Interpreter of the environment Unsloth is installed in (default: the one running harness)."
    )


class UnslothTuner(TrainerTuner):
    kind = "unsloth"
    Config = UnslothConfig

    @classmethod
    def machine_check(cls, config: UnslothConfig):
        problem = cuda_problem(
            "the unsloth tuner",
            "use tuner kind: local (trl + peft), which trains LoRA on CPU, CUDA or MPS with the same config keys.",
        )
        return [(("kind",), problem)] if problem else []

    def _job(self, examples: list[TrainExample], pre: Preflight) -> Path:
        from harness.run.folder import write_json_atomic

        job = self.ctx.workdir / "unsloth-job.json"
        write_json_atomic(
            job,
            json.dumps(
                {
                    "config": self.config.model_dump(mode="json"),
                    "base_source": self.ctx.base_source,
                    "output_dir": str(self.checkpoint_root),
                    "max_length": pre.max_length,
                    "seed": self.ctx.seed,
                    "default_targets": DEFAULT_LORA_TARGETS,
                    "offline": _offline(),
                    "examples": [{"prompt": e.prompt, "completion": e.completion} for e in examples],
                }
            ),
        )
        return job

    def train(self, examples: list[TrainExample], pre: Preflight) -> TuneResult:
        problem = cuda_problem("the unsloth tuner", "use tuner kind: local.")
        if problem:
            raise HarnessError(problem)
        python = self.config.python or sys.executable
        job, result_path = self._job(examples, pre), self.checkpoint_root / "train_result.json"
        result_path.unlink(missing_ok=True)
        resumed = bool(self._checkpoint_folders())
        started = time.perf_counter()
        code = run_logged(
            [python, str(SCRIPT), str(job)],
            self.ctx.workdir / "unsloth.log",
            what="unsloth",
            progress=lambda line: bool(re.search(r"Unsloth|'loss'|finished", line)),
        )
        wall = time.perf_counter() - started
        _append_run(self.ctx.workdir, wall)
        if code != 0 or not result_path.exists():
            raise HarnessError(
                f"unsloth training exited with status {code}; its output is in {self.ctx.workdir / 'unsloth.log'}. "
                f"Checkpoints so far are kept in {self.checkpoint_root}; rerun the same command to resume. "
                f"If Unsloth is not installed for {python}, install it there (see unsloth's docs) or set "
                "tuner.config.python to the interpreter that has it."
            )
        child = json.loads(result_path.read_text())
        total = _total_wall(self.ctx.workdir)
        folders = self._checkpoint_folders()
        history = json.loads((folders[-1] / "trainer_state.json").read_text()).get("log_history", []) if folders else []
        tokens = self.trained_tokens(pre)
        stats = TunerStats(
            wall_s=round(total, 2),
            device=child.get("device", "cuda"),
            engine=f"unsloth {child.get('unsloth')}",
            gpu=child.get("gpu"),
            resumed=resumed or child.get("resumed", False),
            steps=child["steps"],
            peak_memory_mb=child["peak_memory_mb"],
            peak_memory_kind="cuda allocated during training",
            trained_tokens=tokens,
            train_tokens_per_s=round(tokens / child["wall_s"], 1) if child["wall_s"] else None,
            wall_s_basis="training processes' time, model loading included, summed over every run that made the checkpoints",
            device_hours=round(total / 3600, 9),
        )
        return TuneResult(checkpoints=self._checkpoints(), curve=self.curve_rows(history), stats=stats)


def _offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")


def _append_run(workdir: Path, wall: float) -> None:
    with open(workdir / "train-runs.jsonl", "a") as f:
        f.write(json.dumps({"wall_s": round(wall, 3)}) + "\n")


def _total_wall(workdir: Path) -> float:
    path = workdir / "train-runs.jsonl"
    return (
        sum(json.loads(line)["wall_s"] for line in path.read_text().splitlines() if line.strip())
        if path.exists()
        else 0.0
    )
