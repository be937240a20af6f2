"""Data layouts and few-shot exemplar selection."""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
import yaml

from harness.run.compare import CompareOptions, compare
from harness.suite.load import load_suite
from tests.conftest import base_suite, make_rows, write_jsonl, write_suite


def test_one_source_file_is_split_by_seed_and_stratified(tmp_path):
    suite = base_suite()
    suite["data"] = {"source": "data/all.jsonl", "split": {"train": 0.6, "dev": 0.1, "test": 0.3}}
    folder = tmp_path / "s"
    path = write_suite(folder, suite)
    write_jsonl(folder / "data/all.jsonl", make_rows("all", 90))
    a = load_suite(path).dataset
    b = load_suite(path).dataset
    assert (len(a.train), len(a.dev), len(a.test)) == (54, 9, 27)
    assert [c.id for c in a.test] == [c.id for c in b.test]
    assert Counter(c.target for c in a.test) == {"alpha": 9, "beta": 9, "gamma": 9}
    suite["seed"] = 8
    path.write_text(yaml.safe_dump(suite))
    assert [c.id for c in load_suite(path).dataset.test] != [c.id for c in a.test]


def test_csv_and_parquet_and_templates(tmp_path):
    folder = tmp_path / "s"
    suite = base_suite()
    suite["task"]["prompt_template"] = "Request: {text}"
    suite["data"] = {"train": "data/train.csv", "test": "data/test.parquet"}
    path = write_suite(folder, suite)
    pd.DataFrame(make_rows("train", 12)).to_csv(folder / "data/train.csv", index=False)
    pd.DataFrame(make_rows("test", 6)).to_parquet(folder / "data/test.parquet")
    ds = load_suite(path).dataset
    assert len(ds.train) == 12 and len(ds.test) == 6 and ds.dev == []
    assert ds.test[0].input == "Request: test request number 0 about alpha"


def _few_shot_prompts(tmp_path, selection, k):
    suite = base_suite()
    suite["strategies"] = [{"name": "few", "kind": "few_shot", "config": {"k": k, "selection": selection}}]
    path = write_suite(tmp_path / selection, suite, n_train=30)
    compare(path, CompareOptions(out=tmp_path / f"run-{selection}", use_cache=False))
    return pd.read_json(tmp_path / f"run-{selection}" / "cases.jsonl", lines=True)


def _exemplar_turns(prompt: str) -> list[tuple[str, str]]:
    """The (user, assistant) exemplar pairs of a fake-backend prompt: every user turn but the last (the case)."""
    turns = re.findall(r"^\[(user|assistant)\] (.*)$", prompt, re.M)
    users = [text for role, text in turns if role == "user"]
    answers = [text for role, text in turns if role == "assistant"]
    assert len(users) == len(answers) + 1, prompt  # one answer per exemplar, then the case itself
    return list(zip(users[:-1], answers, strict=True))


def test_balanced_exemplars_come_from_train_only_and_cover_every_label(tmp_path):
    df = _few_shot_prompts(tmp_path, "balanced", 6)
    train = {r["text"]: r["label"] for r in make_rows("train", 30)}
    held_out = {r["text"] for r in make_rows("test", 9) + make_rows("dev", 6)}
    for prompt, case_input in zip(df.prompt, df.input, strict=True):
        exemplars = _exemplar_turns(prompt)
        assert len(exemplars) == 6
        assert sorted(label for _, label in exemplars) == ["alpha"] * 2 + ["beta"] * 2 + ["gamma"] * 2
        # each exemplar is a train case with its own label; no test or dev input is among them
        assert all(train.get(text) == label for text, label in exemplars), exemplars
        assert not {text for text, _ in exemplars} & held_out
        assert prompt.rstrip().endswith(f"[user] {case_input}")
    assert df.prompt.nunique() == len(df)  # each prompt ends with its own case


def test_similar_selection_picks_neighbours_per_case(tmp_path):
    df = _few_shot_prompts(tmp_path, "similar", 3)
    assert len(df) == 9
    train = {r["text"]: r["label"] for r in make_rows("train", 30)}
    for _, r in df.iterrows():
        exemplars = _exemplar_turns(r.prompt)
        assert all(train.get(text) == label for text, label in exemplars), exemplars  # from train only
        assert sum(label == r.target for _, label in exemplars) >= 2, r.prompt  # neighbours share its label
    assert df.meta.apply(lambda m: len(m["exemplar_ids"])).eq(3).all()
