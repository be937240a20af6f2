"""The OpenAI chat fine-tuning file as cases: `{"messages": [...]}` per line, as a team prepared it for OpenAI or
Azure OpenAI fine-tuning (https://platform.openai.com/docs/guides/supervised-fine-tuning).

One line is one case. Its answer (the target) is the last assistant turn OpenAI would train on (`weight` 1, the
default); the turns before it are the input (one user turn becomes text; a conversation stays chat messages, its
earlier assistant turns as context), and turns after it are dropped (OpenAI trains on none of them). A leading
system (or developer) turn is the task's instructions: it comes off the input, and the lines must agree on it
unless the suite's own `task.instructions` replace it. Tool calls and tool results are refused: harness answers
and scores text. The other way, `chat_lines` writes cases (as a strategy prompts them) in this format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError

SYSTEM_ROLES = ("system", "developer")
ROLES = (*SYSTEM_ROLES, "user", "assistant")
TOOL_KEYS = ("tool_calls", "function_call")


@dataclass
class SystemTurn:
    """The system turn the lines share, over every file read with it (train, dev and test alike)."""

    text: str | None = None  # the first line's; None when it has none
    at: str | None = None  # 'file:line' it was first read from; None before any line
    line: int | None = None
    differs_at: int | None = None  # the first line whose system turn differs (read with the suite's instructions)


def _text(content: Any, where: str) -> str:
    """A message's content as text: a string, or OpenAI's list of content parts where every part is text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise DataError(
                    f"{where}: a content part of type {kind!r}; harness reads text parts only. Fix: keep text "
                    "content, or drop the line."
                )
        return "".join(texts)
    raise DataError(
        f"{where}: `content` is {type(content).__name__}, not text. Fix: give each turn its text as `content`."
    )


def _turns(row: dict[str, Any], where: str) -> list[dict[str, Any]]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        keys = ", ".join(sorted(k for k in row if k != "__line__")) or "none"
        raise DataError(
            f"{where}: no `messages` list (keys: {keys}); data.format openai_chat reads lines of "
            '{"messages": [{"role": ..., "content": ...}, ...]}. Fix: write the line in that format, or remove '
            "data.format to read fields."
        )
    if row.get("tools") or row.get("functions"):
        raise DataError(
            f"{where}: the line declares `tools`; harness answers and scores text, not tool calls. Fix: drop "
            "tool-use lines from the file (or evaluate them with a tool-aware harness)."
        )
    for i, message in enumerate(messages):
        at = f"{where}: messages[{i}]"
        if not isinstance(message, dict):
            raise DataError(f"{at}: is {type(message).__name__}, not an object. Fix: write {{'role', 'content'}}.")
        role = message.get("role")
        if role == "tool" or role == "function" or any(message.get(k) for k in TOOL_KEYS):
            raise DataError(
                f"{at}: a tool call or tool result ({role}); harness answers and scores text, not tool calls. "
                "Fix: drop tool-use lines from the file."
            )
        if role not in ROLES:
            raise DataError(f"{at}.role: {role!r} is not one of {', '.join(ROLES)}. Fix: correct the role.")
        if "weight" in message:
            if role != "assistant":
                raise DataError(f"{at}.weight: on a {role} turn; OpenAI weighs assistant turns only. Fix: remove it.")
            if type(message["weight"]) is not int or message["weight"] not in (0, 1):
                raise DataError(f"{at}.weight: {message['weight']!r}; OpenAI allows 0 or 1. Fix: use 0 or 1.")
        if role in SYSTEM_ROLES and i > 0:
            raise DataError(
                f"{at}: a {role} turn after the first turn; harness keeps one system turn, first. Fix: merge it "
                "into the first turn."
            )
    return messages


def chat_row(row: dict[str, Any], where: str, *, input_field: str, target_field: str) -> tuple[dict, str | None]:
    """(a row with the case's input and target, the line's system turn or None)."""
    messages = _turns(row, where)
    answer = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if messages[i]["role"] == "assistant" and messages[i].get("weight", 1) == 1
        ),
        None,
    )
    if answer is None:
        what = (
            "every assistant turn has weight 0"
            if any(m["role"] == "assistant" for m in messages)
            else "no assistant turn"
        )
        raise DataError(
            f"{where}: {what}, so the line has no answer to learn or score. Fix: end the conversation with the "
            "assistant's answer (weight 1, the default)."
        )
    system = None
    before = messages[:answer]
    if before and before[0]["role"] in SYSTEM_ROLES:
        system = _text(before[0].get("content"), f"{where}: messages[0].content")
        before = before[1:]
    turns = [
        {"role": m["role"], "content": _text(m.get("content"), f"{where}: messages[{i}].content")}
        for i, m in enumerate(before, start=answer - len(before))
    ]
    if not any(t["role"] == "user" for t in turns):
        raise DataError(f"{where}: no user turn before the answer. Fix: give the user's turn before the answer.")
    target = _text(messages[answer].get("content"), f"{where}: messages[{answer}].content")
    value: Any = turns[0]["content"] if len(turns) == 1 else turns  # one user turn: text; else the conversation
    out = {input_field: value, target_field: target}
    if "__line__" in row:
        out["__line__"] = row["__line__"]
    return out, system


def chat_rows(
    rows: list[dict[str, Any]],
    path: Path,
    *,
    input_field: str,
    target_field: str,
    instructions_given: bool,
    system: SystemTurn | None = None,
) -> tuple[list[dict[str, Any]], SystemTurn]:
    """Every line as a case row, and the system turn they share; the lines (of this file and of those read before
    with the same `system`) must share it unless the suite gives instructions."""
    system = system or SystemTurn()
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows, start=1):
        line = row.get("__line__", i)
        where = f"{path}:{line}"
        converted, text = chat_row(row, where, input_field=input_field, target_field=target_field)
        out.append(converted)
        if system.at is None:
            system.text, system.at, system.line = text, where, line
        elif text != system.text:
            if not instructions_given:
                raise DataError(_system_differs(where, text, system))
            system.differs_at = system.differs_at or line
    return out, system


def _system_differs(where: str, text: str | None, first: SystemTurn) -> str:
    def shown(text: str | None) -> str:
        if text is None:
            return "no system turn"
        return f"system turn {text[:60]!r}{'...' if len(text) > 60 else ''}"

    return (
        f"{where}: {shown(text)}, but {first.at} has {shown(first.text)}; the system turn becomes the task's "
        "instructions, so every line must share it. Fix: give every line the same system turn, or set "
        "task.instructions in the suite (it then replaces the lines' system turns)."
    )


def chat_lines(messages_and_answers: list[tuple[list[dict[str, str]], str]]) -> str:
    """Chat JSONL: one `{"messages": [...prompt, assistant answer]}` line per (prompt messages, answer). Assistant
    turns inside the prompt (a conversation's earlier replies, exemplars) carry `weight: 0`, so OpenAI trains on the
    answer only, as the local tuner does."""

    def turn(message: dict[str, str]) -> dict[str, Any]:
        return {**message, "weight": 0} if message.get("role") == "assistant" else dict(message)

    return "".join(
        json.dumps({"messages": [*map(turn, prompt), {"role": "assistant", "content": answer}]}, ensure_ascii=False)
        + "\n"
        for prompt, answer in messages_and_answers
    )
