"""The shared-prefix training step gives the same loss and gradients as the plain one, with less work."""

from __future__ import annotations

import pytest
import torch

from harness.backends.hf import cache_kwarg
from strategies.finetune.local import MIN_SHARED_PREFIX, split_shared_prefix


def lora_model(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
            init_lora_weights=False,
        ),
    )
    model.train()
    return model


def batch(prefix_len=40, suffixes=((5, 3), (9, 2), (7, 4))):
    """Right-padded rows: a shared prompt prefix, a per-row prompt tail, then an answer that carries the loss."""
    g = torch.Generator().manual_seed(1)
    prefix = torch.randint(10, 1000, (prefix_len,), generator=g).tolist()
    rows, labels = [], []
    for tail, answer in suffixes:
        own = torch.randint(10, 1000, (tail + answer,), generator=g).tolist()
        rows.append(prefix + own)
        labels.append([-100] * (prefix_len + tail) + own[tail:])
    width = max(map(len, rows))
    mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    return {
        "input_ids": torch.tensor([r + [0] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels]),
    }


def loss_and_grads(model, inputs):
    model.zero_grad()
    out = model(**inputs)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return out.loss.detach(), grads


def test_shared_prefix_step_matches_the_plain_step(tiny_model):
    model = lora_model(tiny_model)
    inputs = batch()
    plain_loss, plain_grads = loss_and_grads(model, inputs)
    shared = split_shared_prefix(model, dict(inputs), cache_kwarg=cache_kwarg(model))
    assert shared["input_ids"].shape[1] == inputs["input_ids"].shape[1] - 39  # 40 shared, one kept in the suffix
    model.zero_grad()
    out = model(**shared)
    out.loss.backward()
    assert out.loss.item() == pytest.approx(plain_loss.item(), rel=1e-5)
    for name, grad in plain_grads.items():
        got = dict(model.named_parameters())[name].grad
        assert torch.allclose(got, grad, atol=1e-6, rtol=1e-4), name


def test_batches_without_a_long_shared_prefix_are_left_alone(tiny_model):
    model = lora_model(tiny_model)
    inputs = batch(prefix_len=MIN_SHARED_PREFIX - 4)
    assert split_shared_prefix(model, dict(inputs), cache_kwarg=cache_kwarg(model))["input_ids"] is inputs["input_ids"]


def test_no_shortcut_under_gradient_checkpointing(tiny_model):
    """Checkpointed layers drop a passed-in cache; the rows would lose their prompt, so the split must not happen."""
    model = lora_model(tiny_model)
    model.gradient_checkpointing_enable()
    inputs = batch()
    assert split_shared_prefix(model, dict(inputs), cache_kwarg=cache_kwarg(model))["input_ids"] is inputs["input_ids"]
