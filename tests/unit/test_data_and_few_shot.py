"""Data layouts and few-shot exemplar selection."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import yaml

from harness.suite.load import load_suite
from harness.run.compare import CompareOptions, compare
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


def test_balanced_exemplars_come_from_train_only_and_cover_every_label(tmp_path):
    df = _few_shot_prompts(tmp_path, "balanced", 6)
    prompt = df.prompt.iloc[0]
    assert prompt.count("[assistant]") == 6
    for label in ("alpha", "beta", "gamma"):
        assert prompt.count(f"[assistant] {label}") == 2
    assert "test request" not in prompt.split("[user] test request")[0]  # no test case leaks into exemplars
    assert df.prompt.nunique() == len(df)  # each prompt ends with its own case


def test_similar_selection_picks_neighbours_per_case(tmp_path):
    df = _few_shot_prompts(tmp_path, "similar", 3)
    for _, r in df.iterrows():
        label = r.target
        exemplar_part = r.prompt.rsplit("[user]", 1)[0]
        assert exemplar_part.count(f"[assistant] {label}") >= 2, r.prompt
    assert df.meta.apply(lambda m: len(m["exemplar_ids"])).eq(3).all()
