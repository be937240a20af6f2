"""How the local tuner fits a training step on a GPU (checkpointing and micro-batches from the memory left after the
weights) and trains padding-free (examples packed into one row, attention kept within each example)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig

from harness.tuner import TrainExample, TuneContext
from strategies.finetune.local import LocalConfig, LocalTuner
from strategies.finetune.memory import activation_bytes_per_token, memory_plan
from tests.integration.test_shared_prefix_training import batch, lora_model

GIB = 2**30
LLAMA_1B = LlamaConfig(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
)


def plan(free_gib: float, **kw):
    args = {
        "tokens_per_row": 1024,
        "batch": 8,
        "accumulation": 1,
        "dtype_bytes": 2,
        "lora_dropout": True,
        "fused_loss": True,
        "optimizer_bytes": 0,
        "asked_checkpointing": None,
    }
    return memory_plan(int(free_gib * GIB), LLAMA_1B, **{**args, **kw})


def test_activation_bytes_of_the_llama_1b_shape():
    # per layer and token in bf16: norms and residuals 6h, k/v 2 x 512, MLP 4 x 8192, LoRA dropout copies 6h + 8192
    plain, checkpointed = activation_bytes_per_token(LLAMA_1B, 2, lora_dropout=True)
    assert plain == 16 * 66560 * 2  # about 2 MB a token: 16 GiB for a step of 8 x 1024 tokens
    assert checkpointed == (16 * 2048 + 66560) * 2  # each layer's input, plus one layer recomputed


def test_checkpointing_and_micro_batches_only_when_the_step_does_not_fit():
    roomy = plan(130)  # an H200 with a 1B model loaded
    assert (roomy.micro_batch, roomy.accumulation, roomy.checkpointing) == (8, 1, False)
    assert "130.0 GiB free" in roomy.why and "without checkpointing" in roomy.why
    tight = plan(16)  # a 16 GiB step without checkpointing does not fit in 0.85 x 16 GiB
    assert (tight.micro_batch, tight.accumulation, tight.checkpointing) == (8, 1, True)
    small = plan(1.5)  # not even with checkpointing: 4 rows a pass, accumulated twice, the same batch per step
    assert (small.micro_batch, small.accumulation, small.checkpointing) == (4, 2, True)
    assert "batch 8 as 2 accumulated micro-batches of 4" in small.why
    odd = plan(1.0, batch=6, accumulation=2)  # 6 rows need 1.1 GiB, 5 do not divide 6: 3, and twice the accumulation
    assert (odd.micro_batch, odd.accumulation) == (3, 4)
    hopeless = plan(0.01)
    assert hopeless.micro_batch == 1 and hopeless.checkpointing and "may not fit even so" in hopeless.why


def test_the_configured_checkpointing_and_the_optimizer_are_respected():
    assert plan(130, asked_checkpointing=True).checkpointing is True
    forced = plan(16, asked_checkpointing=False)  # kept off as asked: fewer rows per pass instead
    assert forced.checkpointing is False and forced.micro_batch < 8 and "as configured" in forced.why
    # full fine-tuning's gradients and Adam moments (12 bytes a parameter) come out of the same memory
    assert plan(30).checkpointing is False and plan(30, optimizer_bytes=12 * 1_240_000_000).checkpointing is True
    # logits kept in full (no fused LM head): 128k x 10 bytes a token, a checkpointed step no longer fits in 8 GiB
    assert plan(8).micro_batch == 8 and plan(8, fused_loss=False).micro_batch < 8


def test_packed_rows_attend_within_each_example_only(tiny_model):
    """A padding-free row (examples back to back, position ids restarting at each) gives the loss of the padded
    batch: no example sees another. With positions running on across the row it would not. (Without a KV cache,
    as trl's trainer calls the model: transformers builds the block-diagonal mask from the position ids.)"""
    model = lora_model(tiny_model)
    padded = batch(prefix_len=20)
    with torch.no_grad():
        reference = model(**padded).loss
    lengths = padded["attention_mask"].sum(1).tolist()
    ids = torch.cat([padded["input_ids"][i, :n] for i, n in enumerate(lengths)])[None]
    labels = torch.cat([padded["labels"][i, :n] for i, n in enumerate(lengths)])[None]
    restarting = torch.cat([torch.arange(n) for n in lengths])[None]
    with torch.no_grad():
        packed = model(input_ids=ids, labels=labels, position_ids=restarting, use_cache=False).loss
        running_on = torch.arange(ids.shape[1])[None]
        leaking = model(input_ids=ids, labels=labels, position_ids=running_on, use_cache=False).loss
    assert packed == pytest.approx(reference.item(), abs=1e-5)
    assert abs(leaking.item() - reference.item()) > 1e-3


@pytest.mark.slow  # two short trainings of the tiny model
def test_padding_free_training_matches_padded_training(tiny_model, tmp_path):
    """The tuner's padding-free mode (the GPU default, forced here on CPU) trains to the same losses as padded
    batches, and says which it used and how it fit the step."""
    from harness.suite.schema import BackendSpec

    spec = BackendSpec(name="tiny", kind="hf", model=str(tiny_model))
    examples = [
        TrainExample(
            id=f"e{i}",
            prompt=[{"role": "user", "content": "word " * (3 + 5 * (i % 4)) + str(i)}],
            completion=["alpha", "beta", "gamma"][i % 3],
        )
        for i in range(16)
    ]
    losses = {}
    for padding_free in (False, True):
        config = LocalConfig(
            epochs=1, batch_size=4, rank=4, alpha=8, learning_rate=1e-3, dropout=0.0, padding_free=padding_free
        )
        tuner = LocalTuner(config, TuneContext(spec, str(tiny_model), tmp_path / str(padding_free), 3))
        tuner.step_times, tuner.step_losses = [], []
        result = tuner.train_here(examples, tuner.validate(examples))
        assert result.stats.padding_free is padding_free and result.stats.gradient_checkpointing is False
        assert result.stats.micro_batch == 4 and "no checkpointing" in (result.stats.memory_why or "")
        losses[padding_free] = tuner.step_losses
    assert len(losses[True]) == len(losses[False]) == 4
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def _tuner(tiny_model, tmp_path, **config):
    from harness.suite.schema import BackendSpec

    spec = BackendSpec(name="tiny", kind="hf", model=str(tiny_model))
    return LocalTuner(LocalConfig(batch_size=8, **config), TuneContext(spec, str(tiny_model), tmp_path, 13))


def test_on_cpu_rows_are_packed_only_where_that_computes_fewer_tokens(tiny_model, tmp_path):
    """Short answers to one long shared instruction: padded batches compute the shared prefix once, so they win.
    Prompts from a few words to hundreds, in few batches (the sampler cannot group them): packing wins."""
    instructions = "Sort the request into one of the team's queues. " + "Queue rules follow. " * 40
    shared = [
        TrainExample(
            id=f"s{i}",
            prompt=[{"role": "system", "content": instructions}, {"role": "user", "content": f"r {i}"}],
            completion="alpha",
        )
        for i in range(32)
    ]
    tuner = _tuner(tiny_model, tmp_path / "a")
    packed, why = tuner._choose_packing("cpu", tuner.validate(shared), shared)
    assert packed is False and "padded batches compute" in why
    varied = [
        TrainExample(id=f"v{i}", prompt=[{"role": "user", "content": "word " * (4 if i % 2 else 400)}], completion="ok")
        for i in range(16)
    ]
    tuner = _tuner(tiny_model, tmp_path / "b")
    packed, why = tuner._choose_packing("cpu", tuner.validate(varied), varied)
    assert packed is True and "padded batches" in why and "x that" in why
    # the config and the device decide first; truncation rules packing out
    assert (
        _tuner(tiny_model, tmp_path / "c", padding_free=False)._choose_packing("cpu", tuner.validate(varied), varied)[0]
        is False
    )
    assert tuner._choose_packing("cuda", tuner.validate(shared), shared) == (True, "cuda: padding-free rows")
    longest = tuner.validate(varied).token_lengths.max  # the longest example; a token less cuts its answer
    cut = _tuner(tiny_model, tmp_path / "d", max_length=longest - 1, max_truncated_fraction=1.0)
    assert cut._choose_packing("cuda", cut.validate(varied), varied)[0] is False  # answers cut: only padding cuts
