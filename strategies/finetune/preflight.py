"""Checks on fine-tuning data before any training, shared by every tuner (after OpenAI's data-prep cookbook):
roles, empty content, missing answers, too few examples, duplicates, token lengths and truncation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.errors import DataError
from harness.tuner import Preflight, TrainExample

MIN_EXAMPLES = 10
ROLES = {"system", "user", "assistant"}


def structural_problems(examples: list[TrainExample]) -> list[str]:
    """Problems that make training pointless or wrong; each names the example."""
    problems = []
    if len(examples) < MIN_EXAMPLES:
        problems.append(
            f"only {len(examples)} training examples; at least {MIN_EXAMPLES} are needed. Fix: add train cases."
        )
    for ex in examples:
        for i, message in enumerate(ex.prompt):
            if message.get("role") not in ROLES:
                problems.append(
                    f"example '{ex.id}': message {i} has role {message.get('role')!r}; allowed: {', '.join(sorted(ROLES))}."
                )
            if not str(message.get("content", "")).strip():
                problems.append(
                    f"example '{ex.id}': message {i} ({message.get('role')}) is empty. Fix: fill it or drop the case."
                )
        if not ex.completion.strip():
            problems.append(f"example '{ex.id}': the answer is empty. Fix: fill in the target.")
    return problems


def duplicates(examples: list[TrainExample]) -> int:
    seen, dups = set(), 0
    for ex in examples:
        key = (repr(ex.prompt), ex.completion)
        dups += key in seen
        seen.add(key)
    return dups


def choose_max_length(lengths: list[int], *, cap: int) -> int:
    """The longest example, rounded up to a multiple of 8, but never above the model's limit."""
    longest = max(lengths)
    return min(cap, -(-longest // 8) * 8)


def preflight(
    examples: list[TrainExample],
    count_tokens: Callable[[TrainExample], int],
    *,
    max_length: int | None,
    cap: int,
    max_truncated_fraction: float,
    count_prompt: Callable[[TrainExample], int] | None = None,
) -> Preflight:
    """Run every check; raise DataError listing the problems, or return the report (with warnings)."""
    problems = structural_problems(examples)
    if problems:
        raise DataError("fine-tuning data is not usable:\n- " + "\n- ".join(problems[:20]))
    lengths = [count_tokens(ex) for ex in examples]
    limit = max_length or choose_max_length(lengths, cap=cap)
    truncated = sum(n > limit for n in lengths)
    if truncated and truncated / len(examples) > max_truncated_fraction:
        raise DataError(
            f"{truncated} of {len(examples)} training examples are longer than max_length={limit} tokens and would be "
            f"truncated (longest: {max(lengths)}). Fix: raise tuner max_length, shorten the data, or allow it with "
            f"max_truncated_fraction >= {truncated / len(examples):.2f}."
        )
    if count_prompt is not None:
        # An example whose prompt fills max_length has no answer left to learn from: it would be dropped.
        no_answer = [ex.id for ex, n in zip(examples, lengths, strict=True) if n > limit and count_prompt(ex) >= limit]
        if no_answer:
            raise DataError(
                f"{len(no_answer)} of {len(examples)} training examples have prompts of max_length={limit} tokens or more, "
                f"so nothing of their answer would be trained (e.g. '{no_answer[0]}'). Fix: raise tuner max_length or "
                "shorten the prompts."
            )
    warnings = []
    n_dup = duplicates(examples)
    if n_dup:
        warnings.append(f"{n_dup} duplicate training examples (they weigh double)")
    if truncated:
        warnings.append(f"{truncated} examples truncated to {limit} tokens (allowed by max_truncated_fraction)")
    arr = np.array(lengths)
    stats = {
        "min": int(arr.min()),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "max": int(arr.max()),
    }
    return Preflight(
        n_examples=len(examples),
        n_duplicates=n_dup,
        token_lengths=stats,
        max_length=limit,
        n_truncated=truncated,
        warnings=warnings,
        total_tokens=int(sum(min(n, limit) for n in lengths)),
    )
