"""The local tuner's trainer callbacks: progress with the time left, per-step timings (calibration), early stop
on dev after each checkpoint, and the training time kept beside each checkpoint for resumed runs."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from harness.tuner import Preflight
from strategies.finetune.common import TrainerTuner

log = logging.getLogger("strategies.finetune.local")  # the tuner's own log lines, as before the split


def progress_callback(tuner: TrainerTuner, pre: Preflight, label: str):
    """Training progress: steps with the time left, the latest loss and tokens/s, on the run's progress (a bar at a
    terminal, a line every ~10% otherwise); log lines when there is none (library use)."""
    from transformers import TrainerCallback

    progress = tuner.ctx.progress

    class ShowProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.every = max(1, state.max_steps // 10)
            self.started = time.perf_counter()
            self.first_step, self.first_epoch = state.global_step, float(state.epoch or 0)
            self.loss: float | None = None
            if progress is not None:
                progress.start(f"{label}: training", state.max_steps)
                if state.global_step:  # resumed from a checkpoint
                    progress.advance(state.global_step, "resumed")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def detail(self, state) -> str:
            spent = time.perf_counter() - self.started
            tokens = tuner.trained_tokens(pre, float(state.epoch or 0) - self.first_epoch)
            parts = [f"epoch {float(state.epoch or 0):.2f}"]
            if self.loss is not None:
                parts.append(f"loss {self.loss:.4f}")
            if spent > 0 and tokens > 0:
                parts.append(f"{tokens / spent:,.0f} tokens/s")
            return ", ".join(parts)

        def on_step_end(self, args, state, control, **kwargs):
            if progress is not None:
                progress.advance(1, self.detail(state))
            elif state.global_step % self.every == 0 or state.global_step == state.max_steps:
                log.info("training step %d/%d %s", state.global_step, state.max_steps, self.detail(state))

        def on_train_end(self, args, state, control, **kwargs):
            if progress is not None:
                progress.finish()

    return ShowProgress()


def step_recorder(times: list[float], losses: list[float] | None):
    """Each optimizer step's wall time, and each logged loss, appended to the lists (calibration)."""
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.began)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if losses is not None and logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    return StepRecorder()


def early_stop_callback(tuner: TrainerTuner):
    """After each checkpoint is saved, ask the strategy (TuneContext.on_checkpoint) whether to stop there."""
    from transformers import TrainerCallback

    class StopOnDev(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if tuner.ctx.on_checkpoint is not None and tuner.ctx.on_checkpoint(tuner._checkpoints()):
                log.info("stopping after epoch %.0f: no gain on dev", state.epoch or 0)
                control.should_training_stop = True
            return control

    return StopOnDev()


def elapsed_callback(before: float):
    """Keep the training time so far beside each checkpoint, so a resumed run's cost covers the whole training."""
    from transformers import TrainerCallback

    class Elapsed(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()
            self.before = before

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.exists():
                (folder / "harness-elapsed.json").write_text(
                    json.dumps({"wall_s": self.before + time.perf_counter() - self.started})
                )

    return Elapsed()


def elapsed_before(folders: list[Path]) -> float:
    for folder in reversed(folders):
        marker = folder / "harness-elapsed.json"
        if marker.exists():
            return float(json.loads(marker.read_text())["wall_s"])
    return 0.0
