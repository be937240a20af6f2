"""The hf backend on a tiny random Llama (built in-process, SmolLM2's tokenizer): batching, prefix cache, counts."""

from __future__ import annotations

import json

import pytest

from harness.backends.base import GenRequest
from harness.backends.hf import HFBackend, HFConfig
from harness.suite.schema import BackendSpec, GenerationParams
from tests.conftest import base_suite, write_suite


def backend(path, **config):
    spec = BackendSpec(name="tiny", kind="hf", model=str(path))
    return HFBackend(spec, HFConfig(**config))


def requests(n, shared_words=60, max_new_tokens=8):
    system = "You sort requests. " + " ".join(f"word{i}" for i in range(shared_words))
    params = GenerationParams(max_new_tokens=max_new_tokens)
    return [
        GenRequest(
            [{"role": "system", "content": system}, {"role": "user", "content": "request " + "x " * (i % 5) + str(i)}],
            params,
        )
        for i in range(n)
    ]


def collect(b, reqs):
    out = dict(b.generate(reqs))
    return [out[i] for i in range(len(reqs))]


def test_batched_prefix_cached_answers_equal_one_by_one_answers(tiny_model):
    reqs = requests(7)
    one = collect(backend(tiny_model, batch_size=1, prefix_cache=False), reqs)
    batched = collect(backend(tiny_model, batch_size=4, prefix_cache=True), reqs)
    plain = collect(backend(tiny_model, batch_size=4, prefix_cache=False), reqs)
    assert [r.text for r in batched] == [r.text for r in one] == [r.text for r in plain]
    assert [r.output_tokens for r in batched] == [r.output_tokens for r in one]
    assert all(r.output_tokens <= 8 and r.error is None for r in batched)
    assert {r.batch_size for r in batched} == {4, 3} and all(r.latency_kind == "batch_wall" for r in batched)
    # compute_s is a request's share of busy time; it never exceeds what the request waited for
    assert all(0 < r.compute_s <= r.latency_s for r in batched)


def test_shared_prefix_time_counts_in_latency_and_cost(tiny_model, monkeypatch):
    import time

    b = backend(tiny_model, batch_size=2, prefix_cache=True)
    original = HFBackend._prefix_kv

    def slow_prefix(self, prefix):
        time.sleep(0.3)
        return original(self, prefix)

    monkeypatch.setattr(HFBackend, "_prefix_kv", slow_prefix)
    results = collect(b, requests(4))
    assert all(r.latency_s >= 0.3 for r in results)
    # busy time (cost) counts the prefix once for the group, not once per batch
    busy = sum(r.compute_s for r in results)
    assert 0.3 <= busy < sum(r.latency_s for r in results) / 2


def test_identity_names_device_and_dtype(tiny_model):
    assert backend(tiny_model).identity()["dtype"] == "float32"
    assert backend(tiny_model, dtype="bfloat16").identity()["dtype"] == "bfloat16"
    assert backend(tiny_model).identity() != backend(tiny_model, dtype="bfloat16").identity()


def test_token_counts_match_the_chat_template(tiny_model):
    b = backend(tiny_model, batch_size=4)
    reqs = requests(3)
    tok = b.tokenizer()
    for req, res in zip(reqs, collect(b, reqs), strict=True):
        rendered = tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
        assert res.prompt == rendered
        assert res.input_tokens == len(tok(rendered, add_special_tokens=False)["input_ids"])
        assert rendered.rstrip().endswith("assistant")


def test_identity_changes_with_the_weights(tiny_model, tmp_path):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    first = backend(tiny_model).identity()
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert backend(copy).identity()["model_sha"] == first["model_sha"]
    # the same shapes and config, other weights: a fine-tune saved over the folder must not reuse cached answers
    torch.manual_seed(1)
    other = AutoModelForCausalLM.from_config(AutoModelForCausalLM.from_pretrained(tiny_model).config)
    other.save_pretrained(copy)
    assert (copy / "config.json").read_text() == (tiny_model / "config.json").read_text()
    new_weights = backend(copy).identity()["model_sha"]
    assert new_weights != first["model_sha"]
    (copy / "config.json").write_text(
        (copy / "config.json").read_text().replace('"rms_norm_eps"', '"rms_norm_eps" ', 1)
    )
    assert backend(copy).identity()["model_sha"] not in (first["model_sha"], new_weights)  # the config counts too


def test_compare_with_hf_backend_records_tokens_and_latency(tiny_model, tmp_path):
    from harness.run.compare import CompareOptions, compare

    suite = base_suite()
    suite["backends"] = [
        {
            "name": "tiny",
            "kind": "hf",
            "model": str(tiny_model),
            "generation": {"max_new_tokens": 4},
            "config": {"batch_size": 4},
        }
    ]
    suite["strategies"] = [
        {"name": "zero", "kind": "zero_shot"},
        {"name": "few", "kind": "few_shot", "config": {"k": 6}},
    ]
    path = write_suite(tmp_path / "s", suite)
    record, run = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete" and run.counts.model_calls == 18
    rows = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    assert all(r["input_tokens"] > 20 and 0 <= r["output_tokens"] <= 4 and r["latency_s"] > 0 for r in rows)
    few = record.strategies["few"]
    assert few.input_tokens_mean > record.strategies["zero"].input_tokens_mean
    assert few.latency.p50_s > 0 and few.throughput_output_tok_s > 0
    assert few.setup.load_s is not None and record.manifest.backends["tiny"]["model_sha"]


def test_unknown_model_is_a_clear_error_not_a_crash(tmp_path):
    from harness.errors import ModelUnavailableError
    from harness.run.compare import CompareOptions, compare

    suite = base_suite()
    suite["backends"] = [{"name": "hub", "kind": "hf", "model": "acme/not-a-model"}]
    suite["strategies"] = [{"name": "zero", "kind": "zero_shot"}]
    path = write_suite(tmp_path / "s", suite)
    with pytest.raises(ModelUnavailableError, match=r"(?s)cannot load model 'acme/not-a-model'.*Fix"):
        compare(path, CompareOptions(out=tmp_path / "run"))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_auto_batch_fits_the_free_memory_of_a_llama_1b_shape():
    """The GPU batch arithmetic on Llama-3.2-1B's shape, in bf16: the KV cache (16 layers x 8 kv heads x 64 dims x
    K and V) is 32 KiB a token, and prefilling a layer holds another 64 KiB a token (hidden states, q/k/v and the
    MLP's 3 x 8192 intermediates), so 1,000-token requests in 2 GiB free fit 17; in 40 GiB the cap of 256."""
    from harness.backends.hf import MAX_AUTO_BATCH, batch_from_headroom
    from tests.integration.test_training_plan import LLAMA_1B as config

    assert batch_from_headroom(40 * 2**30, config, 1000, 2) == MAX_AUTO_BATCH
    small = batch_from_headroom(2 * 2**30, config, 1000, 2)
    assert small == int(2 * 2**30 * 0.8) // ((32 + 64) * 1024 * 1000 + 128256 * 4) == 17
    assert batch_from_headroom(2 * 2**30, config, 4000, 2) < small / 3  # four times the tokens, a quarter the batch
    assert batch_from_headroom(10 * 2**20, config, 4000, 2) == 1  # never below one request


def test_auto_batch_is_16_on_cpu_and_halves_on_out_of_memory(tiny_model, monkeypatch, caplog):
    """A batch that runs out of memory is split in halves (not retried one by one, not recorded as failed answers),
    and later batches stay at the size that fit; the answers equal those of a fixed small batch."""
    import torch

    auto = backend(tiny_model)
    assert auto.batch_size(500) == 16
    reqs = requests(24)
    original, sizes = HFBackend._run_batch, []

    def small_memory(self, ids, *args, **kwargs):
        sizes.append(len(ids))
        if len(ids) > 6:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, ids, *args, **kwargs)

    monkeypatch.setattr(HFBackend, "_run_batch", small_memory)
    with caplog.at_level("WARNING"):
        results = collect(auto, reqs)
    assert all(r.error is None for r in results)
    assert sizes[:3] == [16, 8, 4] and max(sizes[3:]) <= 4  # halved, then capped for the rest
    assert "ran out of memory; generating in batches of 8" in caplog.text
    monkeypatch.setattr(HFBackend, "_run_batch", original)
    assert [r.text for r in results] == [r.text for r in collect(backend(tiny_model, batch_size=4), reqs)]
