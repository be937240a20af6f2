"""A finished fine-tune written out for a serving engine: the merged model (vLLM, TGI, llama.cpp after conversion)
or the adapter beside its base (vLLM --lora-modules, TGI LORA_ADAPTERS), with the tokenizer and chat template the
model was trained with, a parity check of greedy answers and SERVING.md naming the commands."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.backends.base import GenRequest
from harness.errors import ConfigError, HarnessError
from harness.suite.data import file_sha256
from harness.tuner import Checkpoint

Format = Literal["merged", "adapter"]
WEIGHT_FILES = ("*.safetensors", "*.bin")


@dataclass
class Exported:
    folder: Path
    format: Format
    checkpoint: Checkpoint
    chosen_how: str
    parity_cases: int
    identical: int
    files: list[Path]


def _served_name(strategy_name: str) -> str:
    return strategy_name.replace("_", "-")


def serving_notes(
    folder: Path, fmt: Format, base: str, name: str, strategy: str, max_new_tokens: int, suite_path: str, dtype: str
) -> str:
    """SERVING.md: how each engine loads the folder, and the suite lines that compare it like any other backend."""
    folder = folder.resolve()
    if fmt == "merged":
        engines = f"""\
- vLLM: `vllm serve {folder} --served-model-name {name} --dtype {dtype} --port 8000`
- TGI: `docker run --gpus all -p 8000:80 -v {folder}:/model ghcr.io/huggingface/text-generation-inference \\
  --model-id /model`   (TGI serves the name `tgi`: set `model: tgi` below)
- llama.cpp: `python convert_hf_to_gguf.py {folder} --outfile {name}.gguf` (from llama.cpp's repository), then
  `llama-server -m {name}.gguf --port 8000 --jinja` (`--jinja` applies the chat template kept in the GGUF)
- Any of them loads it like a hub model: `AutoModelForCausalLM.from_pretrained("{folder}")` works as is.
"""
    else:
        engines = f"""\
- vLLM: `vllm serve {base} --enable-lora --lora-modules {name}={folder} --max-lora-rank 64 --dtype {dtype} --port 8000`
  (requests name the adapter: `model: {name}` below)
- TGI: `docker run --gpus all -p 8000:80 -v {folder}:/adapter -e LORA_ADAPTERS={name}=/adapter \\
  ghcr.io/huggingface/text-generation-inference --model-id {base}`   (requests name `model: {name}`)
- llama.cpp: `python convert_lora_to_gguf.py {folder} --base {base} --outfile {name}-lora.gguf`, then
  `llama-server -m BASE.gguf --lora {name}-lora.gguf --port 8000 --jinja`
- The base is the model the adapter was trained on (`base_model_name_or_path` in adapter_config.json); the engine
  must load that same base.
"""
    return f"""\
# Serving the `{strategy}` fine-tune

Written by `harness tune` ({fmt}). The run answered with it in {dtype}; serve it in the same precision to get the
answers the run scored (`--dtype` above). The folder holds what the engine loads, plus the tokenizer and chat template the
model was trained with: serve it with that template, and send the same messages the suite sends (the task's
instructions and input), or the model sees prompts it was never trained on.

## Start an OpenAI-compatible engine

{engines}
## Compare it like any other backend

Add to {suite_path} (a `zero_shot` strategy on it sends the prompts this fine-tune was trained with):

```yaml
backends:
  - name: served
    kind: openai
    model: {name}
    generation: {{max_new_tokens: {max_new_tokens}, temperature: 0}}
    config:
      base_url: http://localhost:8000/v1
      api_key_env: SERVED_API_KEY      # any value for engines that do not check keys
strategies:
  - name: {name}-served
    kind: zero_shot
    backend: served
economics:
  prices:   # self-hosted: no per-token price; the GPU it runs on is paid by the hour while it is up
    {name}: {{input_per_1m_usd: 0, output_per_1m_usd: 0, finetuned: true, hosting_usd_per_hour: 2.50}}
```

harness-export.json records the checkpoint, how it was chosen, the base model, the files' sha256 and the greedy parity
check of this folder against the fine-tune as harness served it.
"""


def export(
    strategy,
    checkpoint: Checkpoint,
    chosen_how: str,
    out: Path,
    fmt: Format,
    *,
    suite_path: str,
    parity_cases: int = 8,
) -> Exported:
    """Write `checkpoint` of the finetune `strategy` to `out` in `fmt`, and check it answers as harness served it."""
    from harness.backends.hf import HFBackend, HFConfig

    if checkpoint.backend_kind != "hf":
        raise ConfigError(
            f"strategy '{strategy.spec.name}': its fine-tune is served by the provider as model '{checkpoint.model}'; "
            "there are no weights to export. Fix: use that model id with an openai backend."
        )
    if fmt == "adapter" and not checkpoint.adapter:
        raise ConfigError(
            f"strategy '{strategy.spec.name}': a full fine-tune has no adapter. Fix: use --format merged."
        )
    if out.exists() and any(out.iterdir()):
        if not (out / "harness-export.json").exists():
            raise ConfigError(f"{out} exists and holds other files. Fix: give an empty or new folder to --serve-out.")
        shutil.rmtree(out)  # an earlier export of ours: written again
    base_backend = strategy.ctx.backend
    base = base_backend.source()
    tmp = out.with_name(f".{out.name}.tmp-{time.time_ns()}")
    tmp.mkdir(parents=True)
    try:
        tokenizer = HFBackend(base_backend.spec, HFConfig(device="cpu")).tokenizer()
        if fmt == "merged":
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(base if checkpoint.adapter else checkpoint.model, dtype="auto")
            if checkpoint.adapter:
                model = PeftModel.from_pretrained(model, checkpoint.adapter).merge_and_unload()
            model.save_pretrained(tmp, safe_serialization=True)
        else:
            for f in Path(checkpoint.adapter).iterdir():
                if f.name.startswith("adapter_") or f.name == "README.md":
                    shutil.copy2(f, tmp / f.name)
            config_path = tmp / "adapter_config.json"
            config = json.loads(config_path.read_text())
            config["base_model_name_or_path"] = base  # the base it was trained on, as the engine must load it
            config_path.write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(tmp)
        _template_in_tokenizer_config(tmp)
        generation = strategy.ctx.backend.spec.generation
        identical, cases = _parity(strategy, checkpoint, tmp, fmt, parity_cases)
        files = sorted(p for pattern in WEIGHT_FILES for p in tmp.glob(pattern))
        name = _served_name(strategy.spec.name)
        dtype = _served_dtype(strategy, checkpoint)
        (tmp / "SERVING.md").write_text(
            serving_notes(out, fmt, base, name, strategy.spec.name, generation.max_new_tokens, suite_path, dtype)
        )
        record: dict[str, Any] = {
            "format": fmt,
            "strategy": strategy.spec.name,
            "base_model": base,
            "checkpoint": {"epoch": checkpoint.epoch, "step": checkpoint.step, "adapter": checkpoint.adapter},
            "chosen": chosen_how,
            "served_name": name,
            "dtype": dtype,
            "parity": {
                "cases": cases,
                "identical_greedy_answers": identical,
                "what": "greedy answers of this folder, loaded as an engine loads it, against the fine-tune as "
                "harness served it, on the first dev (else train) cases",
            },
            "sha256": {p.name: file_sha256(p) for p in files},
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "harness-export.json").write_text(json.dumps(record, indent=2))
        tmp.replace(out)  # never a half-written folder under the name an engine is pointed at
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if identical < cases:
        raise HarnessError(
            f"the exported {fmt} model in {out} answers {cases - identical} of {cases} parity cases differently from "
            "the fine-tune as harness served it (greedy). It is written, but check it before serving; "
            "--format adapter keeps the exact weights."
        )
    return Exported(out, fmt, checkpoint, chosen_how, cases, identical, [out / p.name for p in files])


def _served_dtype(strategy, checkpoint: Checkpoint) -> str:
    """The precision the run answered with this checkpoint in (a settled `dtype: auto` included)."""
    from harness.backends.hf import pick_device, pick_dtype

    config = strategy._serving_backend(checkpoint).config
    return str(pick_dtype(config.dtype, pick_device(config.device))).removeprefix("torch.")


def _template_in_tokenizer_config(folder: Path) -> None:
    """Engines that read the chat template only from tokenizer_config.json (older TGI, some llama.cpp converters)
    find it there too, not only in chat_template.jinja."""
    template, config_path = folder / "chat_template.jinja", folder / "tokenizer_config.json"
    if template.exists() and config_path.exists():
        config = json.loads(config_path.read_text())
        if "chat_template" not in config:
            config["chat_template"] = template.read_text()
            config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))


def _parity(strategy, checkpoint: Checkpoint, folder: Path, fmt: Format, n: int) -> tuple[int, int]:
    """Greedy answers of the exported folder (loaded from it alone) against the fine-tune as a run serves it."""
    from harness.backends.hf import HFBackend, HFConfig

    dataset = strategy.ctx.dataset
    cases = (dataset.dev or dataset.train)[:n]
    if not cases:
        return 0, 0
    served = strategy._serving_backend(checkpoint)
    spec = served.spec
    if fmt == "merged":
        config = HFConfig(device=served.config.device, dtype=served.config.dtype)
        loaded = HFBackend(spec.model_copy(update={"model": str(folder)}), config)
    else:
        config = served.config.model_copy(update={"adapter": str(folder)})
        loaded = HFBackend(spec, config)
    params = spec.generation.model_copy(update={"temperature": 0.0})
    requests = [GenRequest(strategy.prompt(c).messages, params) for c in cases]
    try:
        before = [r.text for _, r in sorted(served.generate(requests), key=lambda x: x[0])]
        after = [r.text for _, r in sorted(loaded.generate(requests), key=lambda x: x[0])]
    finally:
        served.close()
        loaded.close()
    return sum(a == b for a, b in zip(before, after, strict=True)), len(cases)
