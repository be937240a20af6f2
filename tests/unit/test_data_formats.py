"""Data where users keep it: the OpenAI chat fine-tuning file (data.format openai_chat), Hugging Face datasets
(data.hf: a save_to_disk folder here, the hub refused offline), and `harness tune --export-only --format
openai_chat` back to that file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError
from harness.run.plan import suite_fingerprint
from harness.suite.load import load_suite
from harness.suite.prompts import build_messages
from tests.conftest import LABELS, write_jsonl, write_suite

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYSTEM = "Classify the request: alpha, beta or gamma."


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def chat(i: int, label: str, *, system: str | None = SYSTEM, **extra) -> dict:
    turns = [{"role": "system", "content": system}] if system is not None else []
    turns += [{"role": "user", "content": f"request {i} about {label}"}, {"role": "assistant", "content": label}]
    return {"messages": turns, **extra}


def chat_suite(folder: Path, *, instructions: str | None = None, train: list | None = None, test: list | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "train.jsonl", train or [chat(i, LABELS[i % 3]) for i in range(12)])
    write_jsonl(folder / "test.jsonl", test or [chat(100 + i, LABELS[i % 3]) for i in range(6)])
    task = {"labels": LABELS, **({"instructions": instructions} if instructions else {})}
    suite = {
        "name": "chat",
        "task": task,
        "data": {"train": "train.jsonl", "test": "test.jsonl", "format": "openai_chat"},
        "backends": [{"name": "fake", "kind": "fake", "config": {"default": "alpha"}}],
        "strategies": [{"name": "zero", "kind": "zero_shot"}, {"name": "few", "kind": "few_shot", "config": {"k": 3}}],
        "scorers": [{"kind": "label_accuracy"}],
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return folder / "suite.yaml"


# ---- openai_chat -----------------------------------------------------------------------------------------------


def test_chat_lines_become_cases_and_their_system_turn_the_instructions(tmp_path):
    train = [chat(i, LABELS[i % 3]) for i in range(11)]
    train.append(  # a conversation: earlier turns are context; weight 0 turns are never the answer
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": [{"type": "text", "text": "first "}, {"type": "text", "text": "part"}]},
                {"role": "assistant", "content": "beta", "weight": 1},
                {"role": "user", "content": "and now?"},
                {"role": "assistant", "content": "a draft not to learn", "weight": 0},
            ]
        }
    )
    loaded = load_suite(chat_suite(tmp_path / "s", train=train))
    assert loaded.suite.task.instructions == SYSTEM
    case = loaded.dataset.train[0]
    assert (case.input, case.target) == ("request 0 about alpha", "alpha")
    last = loaded.dataset.train[-1]
    assert last.target == "beta" and last.input == "first part"  # the last weighted answer, turns after it dropped
    messages = build_messages(loaded.suite.task, loaded.dataset.test[0])
    assert messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "request 100 about alpha"},
    ]


def test_multi_turn_input_stays_chat_messages(tmp_path):
    convo = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "which one is about gamma?"},
            {"role": "assistant", "content": "gamma"},
        ]
    }
    train = [chat(i, LABELS[i % 3], system=None) for i in range(11)] + [convo]
    test = [chat(100 + i, LABELS[i % 3], system=None) for i in range(6)]
    loaded = load_suite(chat_suite(tmp_path / "s", train=train, test=test))
    assert loaded.suite.task.instructions == ""  # no system turn anywhere: no system prompt
    case = loaded.dataset.train[-1]
    assert case.target == "gamma"
    assert case.input == convo["messages"][:3]
    assert build_messages(loaded.suite.task, case) == convo["messages"][:3]


def test_lines_that_disagree_on_the_system_turn_are_refused_unless_the_suite_overrides(tmp_path):
    test = [chat(100 + i, LABELS[i % 3]) for i in range(5)] + [chat(200, "beta", system="Another prompt.")]
    path = chat_suite(tmp_path / "s", test=test)
    done = cli("validate", str(path))
    assert done.exit_code == 2, done.output
    assert f"{tmp_path / 's' / 'test.jsonl'}:6:" in done.output
    assert "Another prompt." in done.output and "task.instructions" in done.output
    assert "Traceback" not in done.output

    overridden = load_suite(chat_suite(tmp_path / "o", test=test, instructions="Say alpha, beta or gamma."))
    assert overridden.suite.task.instructions == "Say alpha, beta or gamma."
    assert (
        build_messages(overridden.suite.task, overridden.dataset.test[-1])[0]["content"] == "Say alpha, beta or gamma."
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"messages": [{"role": "user", "content": "no answer here"}]}, "no assistant turn"),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a", "weight": 0},
                ]
            },
            "every assistant turn has weight 0",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "tool_calls": [{"id": "1", "type": "function"}]},
                ]
            },
            "tool call",
        ),
        ({"prompt": "q", "completion": "a"}, "no `messages` list"),
    ],
)
def test_bad_chat_lines_exit_2_naming_file_and_line(tmp_path, line, expected):
    train = [chat(i, LABELS[i % 3]) for i in range(3)] + [line] + [chat(i, LABELS[i % 3]) for i in range(3, 10)]
    done = cli("validate", str(chat_suite(tmp_path / "s", train=train)))
    assert done.exit_code == 2, done.output
    assert f"{tmp_path / 's' / 'train.jsonl'}:4:" in done.output
    assert expected in done.output and "Fix:" in done.output and "Traceback" not in done.output


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        ({"role": "assistant", "content": "alpha", "weight": True}, "weight: True"),
        ({"role": "assistant", "content": "alpha", "weight": 0.5}, "weight: 0.5"),
        ({"role": "user", "content": "alpha", "weight": 1}, "on a user turn"),
    ],
)
def test_weights_are_checked_as_openai_checks_them(tmp_path, turn, expected):
    line = {"messages": [{"role": "user", "content": "q"}, turn, {"role": "assistant", "content": "beta"}]}
    train = [chat(i, LABELS[i % 3]) for i in range(10)] + [line]
    done = cli("validate", str(chat_suite(tmp_path / "s", train=train)))
    assert done.exit_code == 2 and f"{tmp_path / 's' / 'train.jsonl'}:11:" in done.output, done.output
    assert expected in done.output


def test_a_conversation_the_assistant_opens_and_its_export_trains_on_the_answer_only(tmp_path):
    convo = {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "assistant", "content": "Hi! What is your request?"},
            {"role": "user", "content": "something about beta"},
            {"role": "assistant", "content": "beta"},
        ]
    }
    path = chat_suite(tmp_path / "s", train=[chat(i, LABELS[i % 3]) for i in range(11)] + [convo])
    loaded = load_suite(path)
    assert loaded.dataset.train[-1].input == convo["messages"][1:3] and loaded.dataset.train[-1].target == "beta"
    out = tmp_path / "export"
    done = cli("tune", str(path), "--export-only", "--format", "openai_chat", "--out", str(out))
    assert done.exit_code == 0, done.output
    exported = json.loads((out / "train.jsonl").read_text().splitlines()[-1])["messages"]
    assert [(m["role"], m.get("weight")) for m in exported] == [
        ("system", None),
        ("assistant", 0),  # context: OpenAI would otherwise train on it too
        ("user", None),
        ("assistant", None),
    ]


def test_unknown_format_and_missing_instructions_name_the_field(tmp_path):
    path = chat_suite(tmp_path / "s")
    suite = yaml.safe_load(path.read_text())
    suite["data"]["format"] = "sharegpt"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    done = cli("validate", str(path))
    assert done.exit_code == 2 and "data.format" in done.output and "openai_chat" in done.output, done.output

    suite["data"]["format"] = "fields"  # a field-format suite still needs its instructions
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    done = cli("validate", str(path))
    assert done.exit_code == 2 and "task" in done.output and "instructions" in done.output, done.output


def test_init_scaffolds_a_chat_file_whose_system_turns_differ_and_says_so(tmp_path):
    rows = [chat(i, LABELS[i % 3]) for i in range(39)] + [chat(99, "beta", system="Other.")]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    done = cli("init", str(tmp_path / "new"), "--from", str(data))
    assert done.exit_code == 0, done.output
    suite = yaml.safe_load((tmp_path / "new" / "suite.yaml").read_text())
    assert suite["task"]["instructions"] == SYSTEM and "differ (first at line 40)" in suite["description"]
    assert load_suite(tmp_path / "new").suite.task.instructions == SYSTEM


def test_init_recognises_the_chat_file(tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", [chat(i, LABELS[i % 3]) for i in range(40)])
    done = cli("init", str(tmp_path / "new"), "--from", str(data))
    assert done.exit_code == 0, done.output
    suite = yaml.safe_load((tmp_path / "new" / "suite.yaml").read_text())
    assert suite["data"]["format"] == "openai_chat"
    assert "instructions" not in suite["task"]  # the file's system turn is the instructions
    assert suite["task"]["labels"] == LABELS
    loaded = load_suite(tmp_path / "new")
    assert loaded.suite.task.instructions == SYSTEM and len(loaded.dataset.test) == 12


# ---- export ------------------------------------------------------------------------------------------------------


def test_export_openai_chat_reads_back_as_the_same_cases_and_prompts(tmp_path):
    original = write_suite(tmp_path / "s")
    out = tmp_path / "export"
    done = cli("tune", str(original), "--export-only", "--format", "openai_chat", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert "wrote" in done.output and "12 training examples" in done.output
    lines = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [m["role"] for m in lines[0]["messages"]] == ["system", "user", "assistant"]

    back = tmp_path / "back"
    back.mkdir()
    for name in ("train", "validation", "test"):
        shutil.copy(out / f"{name}.jsonl", back / f"{name}.jsonl")
    suite = yaml.safe_load(original.read_text())
    suite["task"] = {"labels": LABELS}
    suite["data"] = {"train": "train.jsonl", "dev": "validation.jsonl", "test": "test.jsonl", "format": "openai_chat"}
    (back / "suite.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    a, b = load_suite(original), load_suite(back)
    for split in ("train", "dev", "test"):
        assert [(c.input, c.target) for c in a.dataset.split(split)] == [
            (c.input, c.target) for c in b.dataset.split(split)
        ]
    assert [build_messages(a.suite.task, c) for c in a.dataset.test] == [
        build_messages(b.suite.task, c) for c in b.dataset.test
    ]


def test_export_bad_input(tmp_path):
    path = write_suite(tmp_path / "s", n_train=4)
    done = cli("tune", str(path), "--export-only", "--format", "openai_chat", "--out", str(tmp_path / "o"))
    assert done.exit_code == 2 and "at least 10" in done.output, done.output
    done = cli("tune", str(path), "--export-only", "--format", "jsonl", "--out", str(tmp_path / "o"))
    assert done.exit_code == 2 and "openai_chat" in done.output, done.output
    done = cli("tune", str(path), "--format", "openai_chat")
    assert done.exit_code == 2 and "--export-only" in done.output, done.output


# ---- Hugging Face datasets -----------------------------------------------------------------------------------


def hf_suite(folder: Path, hf: dict, **data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "squad_saved").exists():
        shutil.copytree(FIXTURES / "hf_saved", folder / "squad_saved")
    suite = {
        "name": "hf",
        "seed": 3,
        "task": {
            "instructions": "Answer with the city only.",
            "prompt_template": "{context}\nQuestion: {question}",
            "target_field": "answer",
        },
        "data": {"hf": hf, **data},
        "backends": [{"name": "fake", "kind": "fake", "config": {"default": "City0"}}],
        "strategies": [{"name": "zero", "kind": "zero_shot"}],
        "scorers": [{"kind": "exact_match"}],
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return folder / "suite.yaml"


def test_saved_dataset_with_column_mapping_and_seeded_cuts(tmp_path):
    hf = {"path": "squad_saved", "columns": {"answer": "answers.text[0]"}}
    loaded = load_suite(hf_suite(tmp_path / "s", hf))
    data = loaded.dataset
    # validation -> dev; the dataset has no test split, so test is cut from train (default 0.2, the suite seed)
    assert (len(data.train), len(data.dev), len(data.test)) == (32, 12, 8)
    case = data.test[0]
    assert case.target == case.fields["answers"]["text"][0] and case.target in case.input
    assert not {c.id for c in data.test} & {c.id for c in data.train}
    again = load_suite(hf_suite(tmp_path / "t", hf))
    assert [c.id for c in again.dataset.test] == [c.id for c in data.test]  # seeded: the same cut every time

    one = load_suite(
        hf_suite(tmp_path / "u", {**hf, "split": "train"}, split={"train": 0.5, "dev": 0.25, "test": 0.25})
    )
    assert (len(one.dataset.train), len(one.dataset.dev), len(one.dataset.test)) == (20, 10, 10)
    assert all(c.id.startswith("tr-") for c in one.dataset.test)

    done = cli("compare", str(tmp_path / "s" / "suite.yaml"), "--out", str(tmp_path / "run"))
    assert done.exit_code == 0, done.output


def test_the_data_and_a_pinned_revision_change_the_fingerprint(tmp_path):
    from datasets import load_from_disk

    path = hf_suite(tmp_path / "s", {"path": "squad_saved", "columns": {"answer": "answers.text[0]"}})
    first = suite_fingerprint(load_suite(path))
    assert suite_fingerprint(load_suite(path)) == first  # the same rows: the same run folder
    saved = tmp_path / "s" / "squad_saved"
    data = load_from_disk(str(saved))
    rows = {split: data[split].to_list() for split in data}
    rows["train"][0]["question"] = "What is the capital of Elsewhere?"
    shutil.rmtree(saved)
    type(data)({k: type(data[k]).from_list(v) for k, v in rows.items()}).save_to_disk(str(saved))
    assert suite_fingerprint(load_suite(path)) != first  # one question edited: another measurement

    hub = hf_suite(tmp_path / "h", {"path": "org/data", "revision": "v1"})
    v1 = suite_fingerprint(load_suite(hub, with_data=False))
    suite = yaml.safe_load(hub.read_text())
    suite["data"]["hf"]["revision"] = "v2"
    hub.write_text(yaml.safe_dump(suite), encoding="utf-8")
    assert suite_fingerprint(load_suite(hub, with_data=False)) != v1


def saved_dataset(folder: Path, splits: dict[str, list[dict]]) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"id": Value("string"), "text": Value("string"), "label": ClassLabel(names=LABELS)})
    DatasetDict({k: Dataset.from_list(v, features=features) for k, v in splits.items()}).save_to_disk(str(folder))


def labelled(prefix: str, n: int) -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "text": f"{prefix} text {i} about {LABELS[i % 3]}", "label": i % 3} for i in range(n)
    ]


def test_fewer_splits_class_labels_and_a_test_only_dataset(tmp_path):
    folder = tmp_path / "s"
    saved_dataset(folder / "squad_saved", {"train": labelled("tr", 30), "test": labelled("te", 9)})
    suite = yaml.safe_load(hf_suite(folder, {"path": "squad_saved"}).read_text())
    suite["task"] = {"instructions": "Label it: {labels}.", "input_field": "text", "target_field": "label"}
    suite["task"]["labels"] = LABELS
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    data = load_suite(folder).dataset
    # train + test (the imdb shape): dev is cut from train (0.1 by default); class-label ints read as their names
    assert (len(data.train), len(data.dev), len(data.test)) == (27, 3, 9)
    assert {c.target for c in data.test} == set(LABELS)
    assert all(c.id.startswith("tr") for c in data.dev)

    shutil.rmtree(folder / "squad_saved")
    saved_dataset(folder / "squad_saved", {"test": labelled("te", 9)})
    only = load_suite(folder).dataset  # nothing to train on: zero-shot still runs
    assert (len(only.train), len(only.dev), len(only.test)) == (0, 0, 9)


def test_hf_bad_input_names_the_suite_line_and_setting(tmp_path):
    path = hf_suite(tmp_path / "s", {"path": "squad_saved", "columns": {"answer": "answer.text[0]"}})
    done = cli("validate", str(path))
    assert done.exit_code == 2, done.output
    assert f"{path}:" in done.output and "data.hf.columns.answer" in done.output and "'answers'" in done.output

    path = hf_suite(tmp_path / "h", {"path": "rajpurkar/squad", "revision": "7b6d24c"})
    done = cli("validate", str(path))
    assert done.exit_code == 2 and "HF_HUB_OFFLINE=1" in done.output and "save_to_disk" in done.output, done.output

    path = hf_suite(tmp_path / "p", {"path": "squad_saved", "split": "tset"}, split={"train": 0.8, "test": 0.2})
    done = cli("validate", str(path))
    assert done.exit_code == 2 and "'test'" not in done.output and "train, validation" in done.output, done.output

    with pytest.raises(HarnessError, match="split"):  # one split to cut needs the fractions
        load_suite(hf_suite(tmp_path / "q", {"path": "squad_saved", "split": "train"}))

    path = hf_suite(tmp_path / "r", {"path": "squad_saved", "revision": "v1"})
    done = cli("validate", str(path))
    assert done.exit_code == 2 and "data.hf.revision" in done.output and "save_to_disk" in done.output, done.output


def test_exporting_the_chat_file_needs_no_model(tmp_path):
    """A laptop writing the file for OpenAI fetches and converts nothing: the prompts need only the suite."""
    import os

    from tests.conftest import REPO

    out = tmp_path / "export"
    done = cli(
        "tune", str(REPO / "suites" / "quickstart"), "--export-only", "--format", "openai_chat", "--out", str(out)
    )
    assert done.exit_code == 0, done.output
    assert len((out / "train.jsonl").read_text().splitlines()) == 300
    assert not (Path(os.environ["HARNESS_HOME"]) / "models").exists()
