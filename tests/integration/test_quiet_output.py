"""What `harness compare` prints while it indexes a corpus and trains, as a user reads it in CI: progress with counts,
loss and tokens/s, and none of the libraries' noise (deprecation notices, the tokenizer's "sequence length is
longer than", per-step bars) unless --verbose asks for everything."""

from __future__ import annotations

import re

import pytest

from tests.conftest import harness_cli, write_jsonl, write_suite
from tests.integration.test_finetune import ft_suite

pytestmark = pytest.mark.slow

NOISE = ("FutureWarning", "DeprecationWarning", "sequence length is longer than", "Map:", "it/s]")


def noisy_suite(tiny_model, folder):
    suite = ft_suite(tiny_model)
    suite["strategies"].append(
        {"name": "rag", "kind": "rag", "backend": "tiny", "config": {"corpus": "corpus.jsonl", "top_k": 1}}
    )
    long_passage = " ".join(f"word{i} alpha beta gamma" for i in range(400))  # ~2,000 tokens: split again
    write_jsonl(
        folder / "corpus.jsonl",
        [{"id": "long", "text": long_passage}] + [{"id": f"d{i}", "text": f"about alpha {i}"} for i in range(30)],
    )
    return write_suite(folder, suite)


def test_progress_without_third_party_noise_unless_verbose(tiny_model, tmp_path):
    path = noisy_suite(tiny_model, tmp_path / "s")
    done = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=tmp_path / "home", timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    training = [line for line in output.splitlines() if line.startswith("[ft: training] ")]
    assert any(re.search(r"\d+/\d+ \(.*loss \d+\.\d+, [\d,]+ tokens/s\)", line) for line in training), output
    assert any("done" in line for line in training)
    assert "indexing the corpus: 31 documents" in output
    assert any(line.startswith("[rag: embedding the corpus's chunks] ") for line in output.splitlines()), output
    assert [n for n in NOISE if n in output] == [], output

    loud = harness_cli(
        "compare", str(path), "--out", str(tmp_path / "loud"), "--verbose", home=tmp_path / "home2", timeout=600
    )
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert "FutureWarning" in loud.stdout + loud.stderr  # the same run, asked to show everything
