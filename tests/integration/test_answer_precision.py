"""The hf backend's `dtype: auto` on a CPU with bf16 instructions: bf16 only where a parity check on dev agrees
with fp32, said in run.json with both timings, kept with the calibration, and used for the answers."""

from __future__ import annotations

import json
import time

import pytest

from harness.backends.base import GenResult
from harness.backends.hf import HFBackend, pick_dtype
from harness.costs import calibrate
from harness.run.compare import CompareOptions, compare
from tests.conftest import base_suite, write_suite


def hf_suite(tiny_model, **config):
    suite = base_suite()
    suite["backends"] = [
        {"name": "tiny", "kind": "hf", "model": str(tiny_model), "generation": {"max_new_tokens": 4}, "config": config}
    ]
    suite["strategies"] = [{"name": "zero", "kind": "zero_shot"}]
    return suite


@pytest.fixture
def scripted_cpu(monkeypatch):
    """A CPU with AVX512-BF16 on which fp32 answers take 0.3 s longer a batch; `bf16_answers` (case text -> answer)
    replaces what bf16 answers, to script disagreement. Counts each precision's generate calls."""
    monkeypatch.setattr(calibrate, "cpu_bf16", lambda: "AVX512-BF16")
    original = HFBackend.generate
    state = {"bf16_answers": {}, "calls": {"float32": 0, "bfloat16": 0}}

    def generate(self, requests):
        dtype = str(pick_dtype(self.config.dtype, "cpu")).removeprefix("torch.")
        state["calls"][dtype] += 1
        if dtype == "float32":
            time.sleep(0.3)
        for i, result in original(self, requests):
            text = requests[i].messages[-1]["content"]
            if dtype == "bfloat16" and text in state["bf16_answers"]:
                result = GenResult(text=state["bf16_answers"][text], prompt=result.prompt, input_tokens=1)
            yield i, result

    monkeypatch.setattr(HFBackend, "generate", generate)
    return state


def test_bf16_answers_where_dev_agrees(tiny_model, tmp_path, scripted_cpu):
    path = write_suite(tmp_path / "s", hf_suite(tiny_model))
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    choice = record.manifest.precision["tiny"]
    assert choice["dtype"] == "bfloat16" and choice["cases"] == 6 and choice["agreeing"] == 6
    assert "AVX512-BF16" in choice["why"] and choice["bf16_s"] < choice["fp32_s"]
    assert record.manifest.backends["tiny"]["dtype"] == "bfloat16"  # the answers' cache key says so
    assert record.strategies["zero"].setup.serving["dtype"] == "bfloat16"
    stored = json.loads((tmp_path / "harness-home" / "calibration.json").read_text())
    assert [v["kind"] for v in stored.values()].count("precision") == 1

    # A second run reads the choice: no fp32 answering at all.
    before = dict(scripted_cpu["calls"])
    again, _ = compare(path, CompareOptions(out=tmp_path / "run2"))
    assert again.manifest.precision["tiny"] == choice
    assert scripted_cpu["calls"]["float32"] == before["float32"]


def test_fp32_when_bf16_changes_scores_on_dev(tiny_model, tmp_path, scripted_cpu):
    # bf16 "answers" the right label on 3 of the 6 dev cases: same text nowhere, another score on those 3
    dev_texts = [f"dev request number {i} about {label}" for i, label in enumerate(["alpha", "beta", "gamma"])]
    scripted_cpu["bf16_answers"] = {t: t.rsplit(" ", 1)[1] for t in dev_texts}
    path = write_suite(tmp_path / "s", hf_suite(tiny_model))
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    choice = record.manifest.precision["tiny"]
    assert choice["dtype"] == "float32" and choice["agreeing"] == 3
    assert "below bf16_parity 0.9, so fp32" in choice["why"] and "label_accuracy" in choice["why"]
    assert record.manifest.backends["tiny"]["dtype"] == "float32"

    # A looser tolerance (the suite's own) takes bf16 on the same evidence.
    loose = write_suite(tmp_path / "loose", hf_suite(tiny_model, bf16_parity=0.5))
    record, _ = compare(loose, CompareOptions(out=tmp_path / "run-loose"))
    assert record.manifest.precision["tiny"]["dtype"] == "bfloat16"


def test_nothing_is_checked_where_bf16_is_not_an_option(tiny_model, tmp_path, scripted_cpu, monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_bf16", lambda: None)
    record, _ = compare(write_suite(tmp_path / "s", hf_suite(tiny_model)), CompareOptions(out=tmp_path / "run"))
    assert record.manifest.precision == {} and record.manifest.backends["tiny"]["dtype"] == "float32"
    assert scripted_cpu["calls"]["bfloat16"] == 0
    monkeypatch.setattr(calibrate, "cpu_bf16", lambda: "AMX")  # asked for fp32 explicitly: no check either
    fixed = write_suite(tmp_path / "fixed", hf_suite(tiny_model, dtype="float32"))
    record, _ = compare(fixed, CompareOptions(out=tmp_path / "run-fixed"))
    assert record.manifest.precision == {} and scripted_cpu["calls"]["bfloat16"] == 0
