"""Training under Unsloth, in its own process: `PYTHON unsloth_train.py JOB.json`.

Standalone on purpose: it imports only unsloth, trl, datasets and torch (never harness), so it runs in whatever
environment the user installed Unsloth into (Unsloth pins its own trl/transformers), and Unsloth is imported
before transformers as it requires. Written by the `unsloth` tuner (unsloth_tuner.py), which reads back the
checkpoints (one per epoch, the same folders as the local tuner's) and `train_result.json`.
"""

import json
import sys
import time
from pathlib import Path


def main(job_path: str) -> None:
    """Train the job's LoRA/QLoRA under Unsloth (resuming from its last checkpoint) and write train_result.json."""
    job = json.loads(Path(job_path).read_text())
    import unsloth  # first, before transformers, as Unsloth requires

    model, tokenizer = _model(job)
    trainer, times = _trainer(job, model, tokenizer)
    out = Path(job["output_dir"])
    result = _train(trainer, out, unsloth_version=getattr(unsloth, "__version__", "unknown"))
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    if len(times) > 1 and len(tokens) > 1:  # steps 2..end: the speed once kernels are compiled and caches warm
        span = times[-1] - times[0]
        result.update(
            wall_s_steps_2_to_end=round(span, 3),
            tokens_trained=int(tokens[-1]),
            tokens_per_s=round((tokens[-1] - tokens[0]) / span, 1) if span > 0 else None,
        )
    tmp = out / "train_result.json.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(out / "train_result.json")
    print("unsloth: finished " + json.dumps(result), flush=True)


def _model(job: dict):
    from unsloth import FastLanguageModel

    cfg = job["config"]
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=job["base_source"],
        max_seq_length=job["max_length"],
        dtype=None,
        load_in_4bit=cfg["method"] == "qlora",
        local_files_only=job.get("offline", False),
    )
    targets = cfg["target_modules"]
    model = FastLanguageModel.get_peft_model(
        model,
        r=cfg["rank"],
        lora_alpha=cfg["alpha"],
        lora_dropout=cfg["dropout"],
        bias="none",
        target_modules=job["default_targets"] if targets == "all-linear" else targets,
        use_gradient_checkpointing=cfg["gradient_checkpointing"],
        random_state=job["seed"],
    )
    return model, tokenizer


def _trainer(job: dict, model, tokenizer):
    """trl's SFTTrainer on the job's examples, one checkpoint per epoch, and the time at each step's end."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer
    from unsloth import is_bfloat16_supported

    times: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter())

    cfg = job["config"]
    examples = [
        {"prompt": e["prompt"], "completion": [{"role": "assistant", "content": e["completion"]}]}
        for e in job["examples"]
    ]
    cuda, bf16 = torch.cuda.is_available(), is_bfloat16_supported()
    args = SFTConfig(
        output_dir=job["output_dir"],
        num_train_epochs=cfg["epochs"],
        per_device_train_batch_size=cfg["batch_size"],
        gradient_accumulation_steps=cfg["gradient_accumulation"],
        learning_rate=cfg["learning_rate"],
        lr_scheduler_type=cfg["lr_scheduler"],
        warmup_steps=cfg["warmup_ratio"],
        weight_decay=cfg["weight_decay"],
        max_length=job["max_length"],
        bf16=bf16,
        fp16=cuda and not bf16,
        logging_steps=1,
        save_strategy="epoch",
        report_to="none",
        seed=job["seed"],
        data_seed=job["seed"],
        dataloader_num_workers=0,
        disable_tqdm=True,
        optim=cfg["optimizer"],
    )
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(examples), args=args)
    trainer.add_callback(StepTimes())
    return trainer, times


def _train(trainer, out: Path, *, unsloth_version: str) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    done = [p for p in out.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if done else None)
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "steps": trainer.state.global_step,
        "resumed": bool(done),
        "device": "cuda" if cuda else "cpu",
        "unsloth": unsloth_version,
        "peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
    }


if __name__ == "__main__":
    main(sys.argv[1])
