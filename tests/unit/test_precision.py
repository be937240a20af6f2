"""The local tuner's precision: what `auto` picks on each device, what the config asks for, and the reason recorded
with it; and the CPU's bf16 instructions read from its flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.costs import calibrate
from harness.suite.schema import BackendSpec
from harness.tuner import TuneContext
from strategies.finetune.local import LocalConfig, LocalTuner


def tuner(tmp_path: Path, **config) -> LocalTuner:
    spec = BackendSpec.model_validate({"name": "m", "kind": "hf", "model": "m"})
    return LocalTuner(LocalConfig(**config), TuneContext(spec, "m", tmp_path, 1))


@pytest.mark.parametrize(
    ("config", "device", "instructions", "expected", "why"),
    [
        ({}, "cuda", None, "bf16", "a GPU"),
        ({}, "cpu", None, "fp32", "without bf16 instructions"),
        ({}, "cpu", "AMX", "fp32", "this CPU has AMX: precision: bf16"),
        ({"precision": "bf16"}, "cpu", "AVX512-BF16", "bf16", "precision: bf16 in the tuner's config"),
        ({"precision": "fp32"}, "cuda", None, "fp32", "precision: fp32 in the tuner's config"),
    ],
)
def test_precision_and_its_reason(tmp_path, monkeypatch, config, device, instructions, expected, why):
    monkeypatch.setattr(calibrate, "cpu_bf16", lambda: instructions)
    chosen, reason = tuner(tmp_path, **config)._choose_precision(device, [])
    assert chosen == expected and why in reason


def test_cpu_bf16_reads_the_flags(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k)
    )
    info.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    assert calibrate.cpu_bf16() == "AVX512-BF16"
    info.write_text("flags : fpu sse amx_bf16 amx_tile avx512_bf16\n")
    assert calibrate.cpu_bf16() == "AMX"
    info.write_text("flags : fpu sse avx2\n")
    assert calibrate.cpu_bf16() is None
