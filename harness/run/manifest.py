"""What a run ran on: package versions, platform, CPU/GPU, seed, data and model hashes."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from harness.records.run import Manifest

PACKAGES = (
    "ft-harness",
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "gguf",
    "pydantic",
    "numpy",
    "scipy",
    "pandas",
    "sacrebleu",
    "rouge-score",
    "scikit-learn",
    "openai",
    "langchain",
    "ragas",
    "sentence-transformers",
    "faiss-cpu",
    "streamlit",
    "lm-eval",
)


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": [],
    }
    torch = sys.modules.get("torch")  # only report GPUs when torch is already in use; never import it here
    if torch is not None and torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def build_manifest(
    *, seed: int, data_hashes: dict[str, str], models: dict[str, Any], precision: dict[str, Any] | None = None
) -> Manifest:
    return Manifest.model_validate(
        {
            "packages": package_versions(),
            "hardware": hardware(),
            "seed": seed,
            "data_sha256": data_hashes,
            "backends": models,
            "precision": precision or {},
            "env": {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES") if k in os.environ},
        }
    )
