"""How the local tuner fits a training step in GPU memory: the largest micro-batch and whether to checkpoint, from
the memory free once the weights are loaded and what a step keeps per token for the backward pass."""

from __future__ import annotations

from typing import NamedTuple


class MemoryPlan(NamedTuple):
    micro_batch: int  # rows per forward pass
    accumulation: int  # micro-batches per optimizer step (micro_batch x accumulation = the configured batch)
    checkpointing: bool
    why: str


HEADROOM = 0.85  # of the free memory; the rest for the allocator's fragmentation and the optimizer's first step


def activation_bytes_per_token(config, dtype_bytes: int, *, lora_dropout: bool) -> tuple[int, int]:
    """Bytes kept per trained token for the backward pass over all layers: (without checkpointing, with it).

    A decoder layer keeps its norms' inputs and outputs, q/k/v and the attention output, the MLP's gate, up,
    activation and product (3-4 x intermediate), and with LoRA dropout a copy of each adapted input. With
    checkpointing only each layer's input is kept, plus one layer's full set while it is recomputed."""
    config = getattr(config, "text_config", None) or config
    hidden = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    kv = int(getattr(config, "num_key_value_heads", None) or heads) * int(
        getattr(config, "head_dim", None) or hidden // heads
    )
    inner = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    layers = int(config.num_hidden_layers)
    per_layer = 6 * hidden + 2 * kv + 4 * inner + ((6 * hidden + inner) if lora_dropout else 0)
    return layers * per_layer * dtype_bytes, (layers * hidden + per_layer) * dtype_bytes


def logits_bytes_per_token(config, *, fused_loss: bool) -> int:
    """The output layer's logits in bf16, their fp32 copy for the loss and its gradient; a fused linear
    cross-entropy (Liger) computes the loss in chunks and keeps none of them."""
    config = getattr(config, "text_config", None) or config
    return 0 if fused_loss else int(config.vocab_size) * (2 + 4 + 4)


def memory_plan(
    free_bytes: int,
    config,
    *,
    tokens_per_row: int,
    batch: int,
    accumulation: int,
    dtype_bytes: int,
    lora_dropout: bool,
    fused_loss: bool,
    optimizer_bytes: int,
    asked_checkpointing: bool | None,
) -> MemoryPlan:
    """The largest micro-batch (up to the configured batch) and whether to checkpoint, so a step fits in the free
    memory: checkpointing only when the batch does not fit without it, smaller micro-batches (more accumulation,
    the same batch per optimizer step) only when it does not fit with it either."""
    plain, checkpointed = activation_bytes_per_token(config, dtype_bytes, lora_dropout=lora_dropout)
    logits = logits_bytes_per_token(config, fused_loss=fused_loss)
    budget = int(free_bytes * HEADROOM) - optimizer_bytes
    gib = 2**30

    def need(rows: int, checkpointing: bool) -> int:
        return rows * tokens_per_row * ((checkpointed if checkpointing else plain) + logits)

    options = [asked_checkpointing] if asked_checkpointing is not None else [False, True]
    micro = batch
    while True:
        for checkpointing in options:
            if need(micro, checkpointing) <= budget or (micro == 1 and checkpointing == options[-1]):
                fits = need(micro, checkpointing) <= budget
                asked = " (as configured)" if asked_checkpointing is not None else ""
                why = (
                    f"{free_bytes / gib:.1f} GiB free after the weights; {micro} x {tokens_per_row} tokens need about "
                    f"{need(micro, checkpointing) / gib:.1f} GiB {'with' if checkpointing else 'without'} "
                    f"checkpointing{asked}"
                )
                if micro < batch:
                    why += f"; batch {batch} as {batch // micro} accumulated micro-batches of {micro}"
                if not fits:
                    why += "; may not fit even so"
                return MemoryPlan(micro, accumulation * (batch // micro), checkpointing, why)
        # the configured batch must stay a whole number of micro-batches
        micro = next(m for m in range(micro - 1, 0, -1) if batch % m == 0)
