"""Fine-tuning speed on one GPU: the harness `local` tuner against trl's SFTTrainer defaults, the best stock trl
setting and the `unsloth` tuner, same model, data and LoRA config, in one run: trained tokens/s, step time, peak
memory, MFU and the loss curve.

Two shapes, random weights built from a config (speed does not depend on the values; the GPU machine has no hub):
  smollm2  SmolLM2-135M (the embedded model), the quickstart's short examples, batch 8
  llama1b  Llama-3.2-1B (16 layers, hidden 2048, GQA 32/8, vocab 128256), examples of 64 to 1,024 tokens spread
           log-uniformly (where padding and packing matter), LoRA r=16 on all linear layers, batch 8
Engines: harness_local (padding-free rows, checkpointing and micro-batch from the free memory, Liger when
installed), trl_defaults (SFTConfig as documented: bf16, gradient checkpointing), trl_best (bf16, packing with
`bfd`, no gradient checkpointing: the fastest stock setting), unsloth (when installed).
The configs and tokenizer come from bench/gpu_assets (`--prepare`, a few MB); `--device cpu` is a dry path with the
same shapes cut to 2 layers, for machines without a GPU (its figures are not GPU figures).
Goals (issue 21, llama1b): >= 3x trl defaults in trained tokens/s, >= 25% MFU on an H100/H200, the loss of the last
quarter of steps within noise of trl defaults'. Run by bench/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import shutil
from pathlib import Path

from _util import REPO, parse, run_python, save, smoke

ASSETS = REPO / "bench" / "gpu_assets"
# Dense bf16 peak of the cards we are lent, for MFU (vendor figures, without sparsity).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}
# Llama-3.2-1B's shape (its config.json), built with random weights; the tokenizer stays SmolLM2's.
LLAMA_32_1B = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
}
SHAPES = {
    "smollm2": {"what": "SmolLM2-135M architecture, random weights; quickstart examples", "n": 512, "n_cpu": 24},
    "llama1b": {
        "what": "Llama-3.2-1B architecture, random weights; examples of 64-1,024 tokens",
        "n": 1024,
        "n_cpu": 16,
    },
}
ENGINES = ("harness_local", "trl_defaults", "trl_best", "unsloth")
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear", "task_type": "CAUSAL_LM"}

WORKER = """
import json, sys
sys.path.insert(0, {bench!r})
from finetune_gpu import worker
print("__DATA__" + json.dumps(worker({engine!r}, {n}, {device!r}, {model!r}, {shape!r})))
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


def shape_config(shape: str, dry: bool):
    """The model config of a shape; `dry` (CPU, smoke) keeps its proportions' kind at 2 layers and a small width."""
    from transformers import AutoConfig, LlamaConfig

    config = AutoConfig.from_pretrained(ASSETS)
    if shape == "llama1b":
        values = {**LLAMA_32_1B, "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id}
        values.pop("model_type")
        if dry:
            values.update(
                hidden_size=64, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=16
            )
        if smoke():  # the tokenizer's own vocabulary: Llama's 128k rows of logits took most of a smoke step
            values["vocab_size"] = config.vocab_size
        config = LlamaConfig(**values)
    if dry:
        config.num_hidden_layers = 2
    return config


def random_model(target: Path, shape: str = "smollm2", dry: bool = False) -> Path:
    """A full model folder with random weights in the shape's config (saved once; bf16 on disk for the 1B)."""
    if (target / "model.safetensors").exists() or (target / "model.safetensors.index.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = shape_config(shape, dry)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if shape == "llama1b" else torch.float32)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(ASSETS).save_pretrained(target)
    return target


def long_examples(n: int, max_tokens: int, seed: int = 0):
    """`n` instruction examples whose prompts run from 64 tokens to about `max_tokens` (log-uniform, as real
    SFT data: many short, a few long) with answers of 8-64 tokens; words from the quickstart's texts."""
    from finetune_cpu import _examples

    from harness.tuner import TrainExample

    loaded, _ = _examples(8)
    words = " ".join(c.input for c in loaded.dataset.train).split()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt_tokens = math.exp(rng.uniform(math.log(64), math.log(max_tokens - 96)))
        answer_tokens = rng.randint(8, 64)
        # about 1.4 tokens a word with this tokenizer
        prompt = " ".join(rng.choice(words) for _ in range(int(prompt_tokens / 1.4)))
        answer = " ".join(rng.choice(words) for _ in range(int(answer_tokens / 1.4)))
        out.append(
            TrainExample(
                id=f"long-{i}",
                prompt=[{"role": "system", "content": "Summarise the request."}, {"role": "user", "content": prompt}],
                completion=answer,
            )
        )
    return loaded, out


def _losses(trainer) -> list[float]:
    return [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]


def worker(engine: str, n: int, device: str, model_dir: str, shape: str = "smollm2") -> dict:
    import tempfile

    import torch
    from datasets import Dataset
    from finetune_cpu import _examples, _rate, _timer, trl_common
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from harness.tuner import TuneContext

    if shape == "llama1b":
        loaded, examples = long_examples(n, 256 if smoke() else 1024)
    else:
        loaded, examples = _examples(n)
    spec = loaded.suite.backends[0].model_copy(update={"model": model_dir})
    timer, out = _timer(), Path(tempfile.mkdtemp())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    extra: dict = {}
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
        result = tuner.train_here(
            examples, tuner.validate(examples), trainer_hook=lambda t: (t.add_callback(timer), trainers.append(t))
        )
        trainer = trainers[0]
        stats = result.stats
        extra = {
            "settings": {
                "precision": stats.precision,
                "micro_batch": stats.micro_batch,
                "gradient_checkpointing": stats.gradient_checkpointing,
                "padding_free": stats.padding_free,
                "fused_kernels": stats.fused_kernels,
                "memory_why": stats.memory_why,
            }
        }
    else:
        data = Dataset.from_list(
            [{"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.completion}]} for e in examples]
        )
        common = trl_common(out, device)
        if engine == "trl_defaults":  # the documented SFTTrainer settings (bf16 and gradient checkpointing on a GPU)
            args = SFTConfig(**common)
        else:  # trl_best: the fastest stock setting: bf16, packing with best-fit decreasing, no checkpointing
            args = SFTConfig(
                **common,
                bf16=device == "cuda",
                gradient_checkpointing=False,
                packing=True,
                packing_strategy="bfd",
                max_length=256 if smoke() else 1024,
            )
        from harness.backends.hf import HFBackend, HFConfig

        tok = HFBackend(spec, HFConfig()).tokenizer()
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype),
            args=args,
            train_dataset=data,
            processing_class=tok,
            peft_config=LoraConfig(**LORA),
        )
        trainer.add_callback(timer)
        trainer.train()
        extra = {
            "settings": {
                "bf16": bool(args.bf16),
                "gradient_checkpointing": bool(args.gradient_checkpointing),
                "packing": bool(args.packing),
            }
        }
    rate = _rate(timer, trainer)
    losses = _losses(trainer)
    quarter = losses[-max(1, len(losses) // 4) :]
    params = sum(p.numel() for p in trainer.model.parameters())
    layers = trainer.model.config.num_hidden_layers
    hidden = trainer.model.config.hidden_size
    mean_len = rate["tokens_trained"] / n  # tokens an example
    result = {
        "engine": engine,
        "device": device,
        "examples": n,
        **rate,
        "step_time_s": round(rate["wall_s_steps_2_to_end"] / max(1, rate["steps"] - 1), 3),
        "loss_last_quarter": round(sum(quarter) / len(quarter), 4),
        "loss_last_quarter_sd": round(
            (sum((x - sum(quarter) / len(quarter)) ** 2 for x in quarter) / len(quarter)) ** 0.5, 4
        ),
        "losses": [round(x, 4) for x in losses],
        **extra,
    }
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
        # LoRA: forward (2N) plus activation gradients (2N) per token; frozen weights get no gradient (about 4N,
        # not the 6N of full training); attention's own matmuls (causal, forward and backward) on top. Tokens are
        # those trained (padding excluded), so padded or duplicated work earns no credit.
        flops_per_token = 4 * params + 3 * 2 * layers * hidden * mean_len
        result.update(
            gpu=name,
            peak_memory_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
            mfu=round(flops_per_token * rate["tokens_per_s"] / peak, 4) if peak else None,
        )
    return result


def run_shape(shape: str, device: str, n: int) -> None:
    dry = device != "cuda"
    folder = ASSETS / f"random-{shape}{'-smoke' if smoke() else '-dry' if dry else ''}"
    model_dir = str(random_model(folder, shape, dry=dry or smoke()))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    engines, unavailable = {}, {}
    for engine in ENGINES:
        if smoke() and engine == "trl_defaults":  # the same trl code path as trl_best, other flags: half a minute saved
            continue
        if engine == "unsloth" and (device != "cuda" or importlib.util.find_spec("unsloth") is None):
            unavailable[engine] = "needs an NVIDIA GPU" if device != "cuda" else "unsloth is not installed here"
            print(shape, engine, "skipped:", unavailable[engine], flush=True)
            continue
        try:
            result = run_python(
                WORKER.format(
                    bench=str(REPO / "bench"), engine=engine, n=n, device=device, model=model_dir, shape=shape
                ),
                env=env,
            )
        except RuntimeError as exc:  # one engine failing must not lose the others' numbers
            unavailable[engine] = str(exc)[-1500:]
            print(shape, engine, "failed:", unavailable[engine], flush=True)
            continue
        result["peak_rss_mb"] = round(result["peak_rss_mb"], 1)
        result.pop("wall_s", None)
        engines[engine] = result
        print(shape, engine, json.dumps({k: v for k, v in result.items() if k != "losses"}), flush=True)
    ours, theirs = engines["harness_local"], engines.get("trl_defaults") or engines["trl_best"]
    memory_key = "peak_memory_mb" if device == "cuda" else "peak_rss_mb"
    ratios = {
        f"ratio_tokens_per_s_vs_{e}": round(ours["tokens_per_s"] / engines[e]["tokens_per_s"], 2)
        for e in ("trl_defaults", "trl_best", "unsloth")
        if engines.get(e, {}).get("tokens_per_s")
    }
    sd = max(theirs["loss_last_quarter_sd"], ours["loss_last_quarter_sd"], 1e-9)
    name = "finetune_gpu" + ("_llama1b" if shape == "llama1b" else "") + ("_dry_run_cpu" if dry else "")
    save(
        name,
        {
            "what": __doc__.split("\n")[0],
            "shape": shape,
            "model": SHAPES[shape]["what"]
            + ("; cut to 2 layers (dry path)" if dry or smoke() else "")
            + "; LoRA r=16 all-linear, batch 8",
            "engines": engines,
            "not_measured": unavailable,
            **ratios,
            "memory_ours_vs_trl_defaults": round(ours[memory_key] / theirs[memory_key], 2),
            "loss_last_quarter_ours_minus_trl_defaults_in_sd": round(
                (ours["loss_last_quarter"] - theirs["loss_last_quarter"]) / sd, 2
            ),
            "goals": (
                {"ratio_tokens_per_s_vs_trl_defaults": 3.0, "mfu": 0.25, "loss_within_sd": 1.0}
                if shape == "llama1b"
                else {"ratio_tokens_per_s_vs_trl_defaults": 1.5, "memory_ours_vs_trl_defaults": 1.0}
            ),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="write bench/gpu_assets from the embedded model")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--shape", default="all", choices=["all", *SHAPES])
    parser.add_argument("--n", type=int, default=None, help="train examples (batch 8); default per shape and device")
    args = parse(parser, device="cpu", n=16)
    if args.prepare or not (ASSETS / "config.json").exists():
        prepare()
        if args.prepare:
            return
    shapes = list(SHAPES) if args.shape == "all" else [args.shape]
    if smoke() and args.shape == "all":  # the second shape runs every engine's code path; the first adds only data
        shapes = ["llama1b"]
    for shape in shapes:
        n = args.n or SHAPES[shape]["n" if args.device == "cuda" else "n_cpu"]
        run_shape(shape, args.device, n)


if __name__ == "__main__":
    main()
