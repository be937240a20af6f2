"""`autotrain` tuner: supervised fine-tuning with Hugging Face AutoTrain Advanced (`autotrain --config`, task llm-sft).

The suite's fine-tuning config and train split become AutoTrain's YAML and a `data/train.jsonl` of chat messages
(the prompt exactly as inference sends it, then the answer), written to `<workdir>/autotrain/`. AutoTrain runs
from the executable or virtual environment named by `executable` (its pinned transformers/trl/peft clash with
ours, so it lives in its own environment); its whole output goes to `autotrain.log` and its loss lines to our
log. The adapter (or full model) it saves is served by the hf backend like the local tuner's, so scoring, costs
and the decision do not depend on who trained. `harness tune SUITE --export-only` writes the same files for
AutoTrain's UI without training.

What AutoTrain does differently from the local tuner, kept as AutoTrain does it: it trains on the whole
conversation (not the answer only) with examples packed into blocks, and with data from files it drops the
validation split and saves no per-epoch checkpoint, so its one final adapter is what the strategy scores on dev.
A model folder saved by a newer transformers than AutoTrain's is given to it as a compatible view (links to the
weights, a tokenizer_config it can read). AutoTrain exits 0 even when training fails; the log decides.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from harness.errors import HarnessError
from harness.tuner import Checkpoint, Preflight, TrainExample, TuneResult, TunerStats
from strategies.finetune.common import AdapterConfig, TrainerTuner, cuda_problem, cuda_visible, run_logged

log = logging.getLogger(__name__)
PROJECT = "harness-autotrain"  # AutoTrain wants a plain name (letters, digits, hyphens) and writes into ./<name>
# tokenizer classes written by transformers >= 5 that AutoTrain's pinned transformers 4.x cannot load
NEW_TOKENIZER_CLASSES = {"TokenizersBackend"}


class AutoTrainConfig(AdapterConfig):
    executable: str = Field(
        "autotrain",
        description="The `autotrain` executable, or the folder of the virtual "
        "environment it is installed in (its bin/ is put first on PATH).",
    )
    mixed_precision: Literal["auto", "none", "fp16", "bf16"] = Field(
        "auto", description="auto: none on CPU, bf16 on GPU."
    )
    gradient_checkpointing: bool | None = Field(None, description="Default: off on CPU, on for GPUs.")
    optimizer: str = Field("adamw_torch", description="AutoTrain's `optimizer` (a transformers optim name).")
    block_size: int | None = Field(None, ge=8, description="Packing block length. Default: max_length.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="More AutoTrain llm params, passed as they are (e.g. use_flash_attention_2, unsloth).",
    )
    timeout_s: float | None = Field(None, gt=0, description="Stop AutoTrain after this long (default: no limit).")


class AutoTrainTuner(TrainerTuner):
    kind = "autotrain"
    Config = AutoTrainConfig

    @classmethod
    def check(cls, config: AutoTrainConfig):
        reserved = {
            "model",
            "project_name",
            "data_path",
            "train_split",
            "valid_split",
            "text_column",
            "push_to_hub",
            "token",
            "username",
        }
        return [
            (("params", key), f"'{key}' is set by harness from the suite. Fix: remove it from params.")
            for key in config.params
            if key in reserved
        ]

    @classmethod
    def machine_check(cls, config: AutoTrainConfig):
        problem = (
            cuda_problem("qlora (4-bit with bitsandbytes)", "use method: lora on this machine.")
            if config.method == "qlora"
            else None
        )
        if problem:
            return [(("config", "method"), problem)]
        if _find_executable(config.executable) is None:
            return [
                (
                    ("config", "executable"),
                    f"no AutoTrain executable at '{config.executable}'. Fix: install "
                    "autotrain-advanced in its own virtual environment (python -m venv at-env && at-env/bin/pip "
                    "install autotrain-advanced) and set executable: at-env.",
                )
            ]
        return []

    # ---- export -----------------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self.ctx.workdir / "autotrain"

    def export(
        self,
        examples: list[TrainExample],
        pre: Preflight,
        folder: Path,
        *,
        base: str | None = None,
        gpu: bool | None = None,
    ) -> list[Path]:
        """Write AutoTrain's config.yml and data/train.jsonl into `folder`; returns the files written."""
        gpu = cuda_visible() if gpu is None else gpu
        if base is None:
            base = str(compatible_base(Path(self.ctx.base_source), folder / "base"))
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        rows = "".join(
            json.dumps({"messages": [*e.prompt, {"role": "assistant", "content": e.completion}]}, ensure_ascii=False)
            + "\n"
            for e in examples
        )
        (data / "train.jsonl").write_text(rows, encoding="utf-8")
        params = self._params(pre, gpu=gpu)
        config = {
            "task": "llm-sft",
            "base_model": base,
            "project_name": PROJECT,
            "log": "none",
            "backend": "local",
            "data": {
                "path": str(data.resolve()),
                "train_split": "train",
                "valid_split": None,
                "chat_template": "tokenizer",
                "column_mapping": {"text_column": "messages"},
            },
            "params": params,
            "hub": {"username": None, "token": None, "push_to_hub": False},
        }
        path = folder / "config.yml"
        path.write_text(
            "# AutoTrain Advanced llm-sft config written by harness from the suite; run: autotrain "
            "--config config.yml\n" + yaml.safe_dump(config, sort_keys=False),
            encoding="utf-8",
        )
        return [path, data / "train.jsonl"]

    def _params(self, pre: Preflight, *, gpu: bool) -> dict[str, Any]:
        """AutoTrain's llm-sft params from the tuner's config (the local tuner's keys), for this machine."""
        cfg = self.config
        precision = {"auto": "bf16" if gpu else None, "none": None}.get(cfg.mixed_precision, cfg.mixed_precision)
        checkpointing = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else gpu
        length = cfg.max_length or pre.max_length
        return {
            "block_size": cfg.block_size or length,
            "model_max_length": max(length, cfg.block_size or 0),
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "lr": cfg.learning_rate,
            "gradient_accumulation": cfg.gradient_accumulation,
            "warmup_ratio": cfg.warmup_ratio,
            "weight_decay": cfg.weight_decay,
            "scheduler": cfg.lr_scheduler,
            "optimizer": cfg.optimizer,
            "peft": cfg.method != "full",
            "quantization": "int4" if cfg.method == "qlora" else None,
            "lora_r": cfg.rank,
            "lora_alpha": cfg.alpha,
            "lora_dropout": cfg.dropout,
            "target_modules": cfg.target_modules
            if isinstance(cfg.target_modules, str)
            else ",".join(cfg.target_modules),
            "merge_adapter": False,
            "padding": "right",
            "mixed_precision": precision,
            "disable_gradient_checkpointing": not checkpointing,
            "logging_steps": 1,
            "seed": self.ctx.seed,
            **cfg.params,
        }

    # ---- training ---------------------------------------------------------------------------------

    def train(self, examples: list[TrainExample], pre: Preflight) -> TuneResult:
        exe = _find_executable(self.config.executable)
        if exe is None:
            raise HarnessError(self.machine_check(self.config)[0][1])
        shutil.rmtree(self.folder / PROJECT, ignore_errors=True)  # AutoTrain cannot resume: a partial run starts over
        self.export(examples, pre, self.folder)
        env = {"PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}", "HF_HUB_DISABLE_TELEMETRY": "1"}
        log_path = self.folder / "autotrain.log"
        log_path.unlink(missing_ok=True)
        started = time.perf_counter()
        code = run_logged(
            [str(exe), "--config", "config.yml"],
            log_path,
            env=env,
            what="autotrain",
            cwd=self.folder,
            timeout_s=self.config.timeout_s,
            progress=lambda line: bool(re.search(r"'loss'|Starting SFT|Finished training|has failed", line)),
        )
        wall = time.perf_counter() - started
        text = log_path.read_text(encoding="utf-8", errors="replace")
        out = self.folder / PROJECT
        weights = "adapter_config.json" if self.config.method != "full" else "config.json"
        failed = re.search(r"train has failed due to an exception: (.*?)(?:\n\S|\Z)", text, re.S)
        if code != 0 or failed or not (out / weights).exists():
            cause = _last_error(text) or f"exit status {code}, no {weights} in {out}"
            raise HarnessError(
                f"AutoTrain training failed: {cause}\nIts whole output is in {log_path}; the config and "
                f"data it was given are in {self.folder}. A rerun starts the training again."
            )
        curve = parse_curve(text)
        device = "cpu" if "--cpu" in text.split("Starting SFT", 1)[0] or "Forcing training on CPU" in text else "cuda"
        tokens = self.trained_tokens(pre)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        stats = TunerStats(
            wall_s=round(wall, 2),
            device=device,
            engine="autotrain-advanced",
            resumed=False,
            steps=curve[-1]["step"] if curve else None,
            trained_tokens=tokens,
            train_tokens_per_s=round(tokens / wall, 1) if wall else None,
            peak_memory_mb=round(peak, 1),
            peak_memory_kind="largest child process peak RSS (AutoTrain's trainer)",
            wall_s_basis="the whole AutoTrain run: data preparation, model loading and training",
            device_hours=round(wall / 3600, 9),
        )
        epoch = curve[-1].get("epoch", self.config.epochs) if curve else self.config.epochs
        lora = self.config.method != "full"
        checkpoint = Checkpoint(
            epoch=round(float(epoch), 3),
            step=stats.steps or 0,
            backend_kind="hf",
            model=self.ctx.base.model if lora else str(out),
            adapter=str(out) if lora else None,
        )
        return TuneResult(checkpoints=[checkpoint], curve=curve, stats=stats)

    def status(self) -> str:
        if (self.ctx.workdir / "result.json").exists():
            return "succeeded"
        return "running_or_interrupted" if (self.folder / "autotrain.log").exists() else "not_started"

    def events(self) -> list[dict[str, Any]]:
        path = self.folder / "autotrain.log"
        return parse_curve(path.read_text(errors="replace")) if path.exists() else []


def _find_executable(name: str) -> Path | None:
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "bin" / "autotrain"
    if path.is_file() and os.access(path, os.X_OK):
        return path.resolve() if path.is_absolute() or os.sep in name else path.absolute()
    found = shutil.which(name)
    return Path(found) if found else None


def compatible_base(source: Path, view: Path) -> Path | str:
    """The base model as AutoTrain's transformers can read it: a hub id as is; a local folder whose tokenizer was
    saved by transformers >= 5 as a folder of links to its files with a tokenizer_config.json that 4.x reads."""
    config = source / "tokenizer_config.json"
    if not config.is_file():
        return str(source)
    tokenizer = json.loads(config.read_text())
    template = source / "chat_template.jinja"
    if tokenizer.get("tokenizer_class") not in NEW_TOKENIZER_CLASSES and not template.exists():
        return source
    view.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        link = view / item.name
        if item.name != "tokenizer_config.json" and not link.exists():
            link.symlink_to(item.resolve())
    if tokenizer.get("tokenizer_class") in NEW_TOKENIZER_CLASSES:
        tokenizer["tokenizer_class"] = "PreTrainedTokenizerFast"
    if template.exists() and "chat_template" not in tokenizer:
        tokenizer["chat_template"] = template.read_text()
    if tokenizer.get("model_max_length", 0) > 1e9:  # "unlimited" (1e30) overflows AutoTrain's block-size arithmetic
        tokenizer["model_max_length"] = 8192
    (view / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=1))
    return view


def parse_curve(text: str) -> list[dict[str, Any]]:
    """AutoTrain logs each Trainer log dict as a line (`... - {'loss': 2.31, 'grad_norm': ..., 'epoch': 0.5}`)."""
    rows = []
    for match in re.finditer(r"(\{'loss': [^{}]*\})", text):
        try:
            logged = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            continue
        rows.append({"step": len(rows) + 1, **{k: v for k, v in logged.items() if isinstance(v, (int, float))}})
    return TrainerTuner.curve_rows(rows)


def _last_error(text: str) -> str | None:
    """AutoTrain's last ERROR line, else the last exception line of a traceback (a crash before its logger)."""
    lines = [line.split(" - ", 1)[-1].strip() for line in text.splitlines() if "ERROR" in line]
    if lines:
        return lines[-1]
    raised = [line.strip() for line in text.splitlines() if re.match(r"^[\w.]*(Error|Exception)\b", line)]
    return raised[-1] if raised else None
