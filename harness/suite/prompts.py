"""The one place that turns a case into chat messages, so inference and fine-tuning see the same prompt.

A strategy may prompt with its own instructions or template (`Suite.task_for`): the case's user turn is then
rendered from the row with that template, exemplars alike, and an empty instruction leaves the system turn out."""

from __future__ import annotations

from collections.abc import Sequence

from harness.suite.data import Case, as_text
from harness.suite.schema import TaskSpec

Messages = list[dict[str, str]]


def system_text(task: TaskSpec) -> str:
    labels = ", ".join(task.labels or [])
    return (task.instructions or "").replace("{labels}", labels).strip()


def user_input(task: TaskSpec, case: Case) -> str | list[dict[str, str]]:
    """The case's input as `task` prompts it: as loaded when the template is the one it was loaded with, else
    rendered from the row with the task's template (or its input field when the task has none)."""
    if task.prompt_template == case.template or not case.fields:
        return case.input
    if task.prompt_template is not None:
        return task.prompt_template.format(**{k: as_text(v) for k, v in case.fields.items()})
    value = case.fields.get(task.input_field, case.input)
    return value if isinstance(value, list) else as_text(value)


def user_turns(case: Case, task: TaskSpec | None = None) -> Messages:
    value = case.input if task is None else user_input(task, case)
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [dict(m) for m in value]


def build_messages(
    task: TaskSpec, case: Case, *, exemplars: Sequence[Case] = (), context: str | None = None
) -> Messages:
    """System instructions, then each exemplar as a user/assistant exchange, then the case itself.

    `context` (retrieved passages) is placed in the last user turn, before the question.
    """
    system = system_text(task)
    messages: Messages = [{"role": "system", "content": system}] if system else []
    for example in exemplars:
        messages += user_turns(example, task)
        messages.append({"role": "assistant", "content": example.target})
    turns = user_turns(case, task)
    if context:
        turns[-1] = {"role": turns[-1]["role"], "content": f"Context:\n{context}\n\n{turns[-1]['content']}"}
    return messages + turns


def prompt_parts(
    task: TaskSpec, case: Case, *, exemplars: Sequence[Case] = (), context: str | None = None
) -> dict[str, str]:
    """The texts `build_messages` puts in the prompt, by part, for token attribution (what each part costs)."""

    def text(turns: Messages) -> str:
        return "\n".join(m["content"] for m in turns)

    shots = [text(user_turns(e, task)) + "\n" + e.target for e in exemplars]
    return {
        "instructions": system_text(task),
        "exemplars": "\n".join(shots),
        "context": context or "",
        "input": text(user_turns(case, task)),
    }
