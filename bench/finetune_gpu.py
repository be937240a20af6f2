"""Fine-tuning speed on one GPU: the harness `local` tuner against trl's SFTTrainer defaults and the `unsloth` tuner,
same model, data and LoRA config, in one run: trained tokens/s, step time, peak memory and MFU.

The GPU machine has no hub and no room for the weights, so the model is SmolLM2-135M's architecture with random
weights (speed does not depend on the values), built from the config and tokenizer in bench/gpu_assets
(made here by `python bench/finetune_gpu.py --prepare`). `--device cpu` is a dry path for machines without a GPU.
Goal (issue 4): >= 1.5x trl defaults in tokens/s at equal or lower peak memory.
Run by bench/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
from pathlib import Path

from _util import REPO, parse, run_python, save, smoke

ASSETS = REPO / "bench" / "gpu_assets"
# Dense bf16 peak of the cards we are lent, for MFU (vendor figures, without sparsity).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}

WORKER = """
import json, sys
sys.path.insert(0, {bench!r})
from finetune_gpu import worker
print("__DATA__" + json.dumps(worker({engine!r}, {n}, {device!r}, {model!r})))
"""


def prepare() -> None:
    """Copy the embedded model's config and tokenizer (a few MB) into bench/gpu_assets for the GPU machine."""
    from harness.backends.default_llm import ensure_embedded

    source = ensure_embedded("smollm2-135m-instruct")
    ASSETS.mkdir(parents=True, exist_ok=True)
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ):
        if (source / name).exists():
            shutil.copyfile(source / name, ASSETS / name)
    print(f"wrote {ASSETS}")


def random_model(target: Path, layers: int | None = None) -> Path:
    """A full model folder with random weights from the assets' config (saved once); `layers` cuts it down."""
    if (target / "model.safetensors").exists():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(ASSETS)
    if layers is not None:
        config.num_hidden_layers = layers
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(ASSETS).save_pretrained(target)
    return target


def worker(engine: str, n: int, device: str, model_dir: str) -> dict:
    import tempfile

    import torch
    from datasets import Dataset
    from finetune_cpu import _examples, _rate, _timer
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from harness.tuner import TuneContext

    loaded, examples = _examples(n)
    spec = loaded.suite.backends[0].model_copy(update={"model": model_dir})
    timer, out = _timer(), Path(tempfile.mkdtemp())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if engine == "unsloth":  # the harness unsloth tuner: Unsloth in its own process, LoRA settings as above
        import strategies.finetune.unsloth_tuner as unsloth_tuner

        config = unsloth_tuner.UnslothConfig(
            epochs=1,
            batch_size=8,
            rank=16,
            alpha=32,
            learning_rate=2e-4,
            optimizer="adamw_torch",
            target_modules="all-linear",
        )
        tuner = unsloth_tuner.UnslothTuner(config, TuneContext(spec, model_dir, out, 13))
        tuner.train(examples, tuner.validate(examples))
        child = json.loads((out / "checkpoints" / "train_result.json").read_text())
        return {
            "engine": engine,
            "device": device,
            "examples": n,
            "steps": child["steps"],
            "tokens_trained": child.get("tokens_trained"),
            "tokens_per_s": child.get("tokens_per_s"),
            "wall_s_steps_2_to_end": child.get("wall_s_steps_2_to_end"),
            "gpu": child.get("gpu"),
            "peak_memory_mb": child["peak_memory_mb"],
            "unsloth": child.get("unsloth"),
            "settings": "Unsloth defaults: LoRA dropout 0, its gradient checkpointing; adamw_torch as the others",
        }
    if engine == "harness_local":
        import strategies.finetune.local as local

        tuner = local.LocalTuner(
            local.LocalConfig(epochs=1, batch_size=8, rank=16, alpha=32, learning_rate=2e-4, device=device),
            TuneContext(spec, model_dir, out, 13),
        )
        trainers = []
        tuner.train_here(
            examples, tuner.validate(examples), trainer_hook=lambda t: (t.add_callback(timer), trainers.append(t))
        )
        trainer = trainers[0]
    else:  # trl_defaults: the documented SFTTrainer settings (bf16 and gradient checkpointing on a GPU)
        data = Dataset.from_list(
            [{"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.completion}]} for e in examples]
        )
        args = SFTConfig(
            output_dir=str(out),
            num_train_epochs=1,
            per_device_train_batch_size=8,
            learning_rate=2e-4,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            seed=13,
            use_cpu=device == "cpu",
            disable_tqdm=True,
        )
        from harness.backends.hf import HFBackend, HFConfig

        tok = HFBackend(spec, HFConfig()).tokenizer()
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_dir),
            args=args,
            train_dataset=data,
            processing_class=tok,
            peft_config=LoraConfig(
                r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
            ),
        )
        trainer.add_callback(timer)
        trainer.train()
    rate = _rate(timer, trainer)
    params = sum(p.numel() for p in trainer.model.parameters())
    result = {
        "engine": engine,
        "device": device,
        "examples": n,
        **rate,
        "step_time_s": round(rate["wall_s_steps_2_to_end"] / max(1, rate["steps"] - 1), 3),
    }
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
        result.update(
            gpu=name,
            peak_memory_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
            # LoRA: forward (2N) plus activation gradients (2N) per token; frozen weights get no gradient
            # (about 4N, not the 6N of full training). Tokens are those trained, so an engine that skips
            # duplicated prefix work shows a higher "effective" MFU.
            mfu_effective=round(4 * params * rate["tokens_per_s"] / peak, 4) if peak else None,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepare", action="store_true", help="write bench/gpu_assets from the embedded model")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--n", type=int, default=256, help="train examples (batch 8)")
    args = parse(parser, device="cpu", n=16)
    if args.prepare or not (ASSETS / "config.json").exists():
        prepare()
        if args.prepare:
            return
    if smoke():  # two layers: the code path, in seconds
        model_dir = str(random_model(REPO / "bench" / "gpu_assets" / "random-model-smoke", layers=2))
    else:
        model_dir = str(random_model(REPO / "bench" / "gpu_assets" / "random-model"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    engines, unavailable = {}, {}
    for engine in ("harness_local", "trl_defaults", "unsloth"):
        if engine == "unsloth" and (args.device != "cuda" or importlib.util.find_spec("unsloth") is None):
            unavailable[engine] = "needs an NVIDIA GPU" if args.device != "cuda" else "unsloth is not installed here"
            print(engine, "skipped:", unavailable[engine], flush=True)
            continue
        try:
            result = run_python(
                WORKER.format(bench=str(REPO / "bench"), engine=engine, n=args.n, device=args.device, model=model_dir),
                env=env,
            )
        except RuntimeError as exc:  # one engine failing must not lose the others' numbers
            unavailable[engine] = str(exc)[-1500:]
            print(engine, "failed:", unavailable[engine], flush=True)
            continue
        result["peak_rss_mb"] = round(result["peak_rss_mb"], 1)
        result.pop("wall_s", None)
        engines[engine] = result
        print(engine, json.dumps(result), flush=True)
    ours, theirs = engines["harness_local"], engines["trl_defaults"]
    memory_key = "peak_memory_mb" if args.device == "cuda" else "peak_rss_mb"
    save(
        f"finetune_{'gpu' if args.device == 'cuda' else 'gpu_dry_run_cpu'}",
        {
            "what": __doc__.split("\n")[0],
            "model": "SmolLM2-135M architecture, random weights; LoRA r=16, batch 8",
            "engines": engines,
            "not_measured": unavailable,
            "ratio_tokens_per_s_vs_trl_defaults": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 2),
            "memory_ours_vs_trl_defaults": round(ours[memory_key] / theirs[memory_key], 2),
            **(
                {
                    "ratio_unsloth_tokens_per_s_vs_trl_defaults": round(
                        engines["unsloth"]["tokens_per_s"] / theirs["tokens_per_s"], 2
                    ),
                    "memory_unsloth_vs_trl_defaults": round(
                        engines["unsloth"]["peak_memory_mb"] / theirs["peak_memory_mb"], 2
                    ),
                }
                if engines.get("unsloth", {}).get("tokens_per_s")
                else {}
            ),
            "goals": {"ratio_tokens_per_s_vs_trl_defaults": 1.5, "memory_ours_vs_trl_defaults": 1.0},
        },
    )


if __name__ == "__main__":
    main()
