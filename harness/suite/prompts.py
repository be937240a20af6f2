"""The one place that turns a case into chat messages, so inference and fine-tuning see the same prompt."""

from __future__ import annotations

from collections.abc import Sequence

from harness.suite.data import Case
from harness.suite.schema import TaskSpec

Messages = list[dict[str, str]]


def system_text(task: TaskSpec) -> str:
    labels = ", ".join(task.labels or [])
    return task.instructions.replace("{labels}", labels).strip()


def user_turns(case: Case) -> Messages:
    if isinstance(case.input, str):
        return [{"role": "user", "content": case.input}]
    return [dict(m) for m in case.input]


def build_messages(
    task: TaskSpec, case: Case, *, exemplars: Sequence[Case] = (), context: str | None = None
) -> Messages:
    """System instructions, then each exemplar as a user/assistant exchange, then the case itself.

    `context` (retrieved passages) is placed in the last user turn, before the question.
    """
    messages: Messages = [{"role": "system", "content": system_text(task)}]
    for example in exemplars:
        messages += user_turns(example)
        messages.append({"role": "assistant", "content": example.target})
    turns = user_turns(case)
    if context:
        turns[-1] = {"role": turns[-1]["role"], "content": f"Context:\n{context}\n\n{turns[-1]['content']}"}
    return messages + turns


def prompt_parts(
    task: TaskSpec, case: Case, *, exemplars: Sequence[Case] = (), context: str | None = None
) -> dict[str, str]:
    """The texts `build_messages` puts in the prompt, by part, for token attribution (what each part costs)."""

    def text(turns: Messages) -> str:
        return "\n".join(m["content"] for m in turns)

    shots = [text(user_turns(e)) + "\n" + e.target for e in exemplars]
    return {
        "instructions": system_text(task),
        "exemplars": "\n".join(shots),
        "context": context or "",
        "input": text(user_turns(case)),
    }
