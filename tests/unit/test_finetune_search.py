"""The fine-tune's search, chosen on dev like RAG's top_k: the grid, `epochs: auto`, the choice, its price and the
under-trained marking, on a scripted tuner whose dev curves are given (no model is trained)."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from harness.builtins import TUNERS
from harness.records.setup import DevScore, Preflight, TokenLengths, TunerStats
from harness.run.compare import CompareOptions, compare
from harness.suite.schema import StrictModel
from harness.tuner import Checkpoint, Tuner, TuneResult
from strategies.finetune.search import Candidate, grid_edges, parse_search, patience_exhausted
from strategies.finetune.strategy import FineTune
from tests.conftest import base_suite, write_suite

# ---- the grid and epochs: auto, from the config alone ---------------------------------------------------------


def test_lists_expand_to_every_combination_in_order_and_repeats_are_dropped():
    search, problems = parse_search(
        {"learning_rate": [1e-4, 3e-4, 1e-4], "rank": [8, 16], "batch_size": 4, "epochs": 2}, has_dev=True
    )
    assert problems == []
    assert [c.values for c in search.candidates] == [
        {"learning_rate": 1e-4, "rank": 8},
        {"learning_rate": 1e-4, "rank": 16},
        {"learning_rate": 3e-4, "rank": 8},
        {"learning_rate": 3e-4, "rank": 16},
    ]
    assert all(c.config["batch_size"] == 4 and c.config["epochs"] == 2 for c in search.candidates)
    assert search.early_stop is None


def test_epochs_auto_trains_up_to_max_epochs_and_is_the_default_with_a_dev_split():
    search, problems = parse_search({"epochs": "auto", "patience": 2, "max_epochs": 5}, has_dev=True)
    assert problems == [] and search.candidates[0].config == {"epochs": 5}
    assert (search.early_stop.patience, search.early_stop.max_epochs) == (2, 5)
    default, _ = parse_search({"learning_rate": 1e-4}, has_dev=True)
    assert default.early_stop is not None and default.candidates[0].config["epochs"] == default.early_stop.max_epochs
    no_dev, problems = parse_search({"learning_rate": 1e-4}, has_dev=False)
    assert problems == [] and no_dev.early_stop is None and "epochs" not in no_dev.candidates[0].config
    provider, problems = parse_search({"epochs": "auto"}, has_dev=True, provider_auto=True)
    assert problems == [] and provider.early_stop is None and provider.candidates[0].config == {"epochs": "auto"}


@pytest.mark.parametrize(
    ("raw", "has_dev", "where", "words"),
    [
        ({"learning_rate": []}, True, ("learning_rate",), "empty list"),
        ({"learning_rate": [1e-4, 2e-4, 3e-4], "rank": [4, 8, 16]}, True, (), "a search over 9 trainings"),
        ({"epochs": [2, "auto"]}, True, ("epochs",), "cannot be one candidate"),
        ({"epochs": 3, "patience": 2}, True, ("patience",), "only applies with epochs: auto"),
        ({"epochs": "auto", "max_epochs": 0}, True, ("max_epochs",), "from 1 to 50"),
        ({"epochs": "auto"}, False, ("epochs",), "no dev split"),
        ({"learning_rate": [1e-4, 3e-4], "epochs": 2}, False, ("learning_rate",), "no dev split"),
    ],
)
def test_a_search_that_cannot_run_is_refused_at_its_field(raw, has_dev, where, words):
    _, problems = parse_search(raw, has_dev=has_dev)
    assert problems and problems[0][0] == ("tuner", "config", *where) and words in problems[0][1]
    assert "Fix:" in problems[0][1] or "must be" in problems[0][1]


def test_patience_counts_epochs_without_gain_over_the_best_before_them():
    assert not patience_exhausted([0.5], 1)
    assert not patience_exhausted([0.5, 0.6], 1)
    assert patience_exhausted([0.5, 0.6, 0.6], 1)  # a tie is no gain
    assert not patience_exhausted([0.5, 0.6, 0.55], 2)
    assert patience_exhausted([0.5, 0.6, 0.55, 0.58], 2)
    assert not patience_exhausted([0.5, 0.4, 0.7], 1)


def test_the_grids_edge_is_flagged_only_when_the_trend_points_outside_it():
    grid = {"learning_rate": [1e-4, 3e-4, 1e-3]}
    cands = [Candidate({}, {"learning_rate": v}) for v in grid["learning_rate"]]
    rising = [(cands[0], 0.5), (cands[1], 0.6), (cands[2], 0.7)]
    assert grid_edges(grid, cands[2], rising) == [
        "learning_rate=0.001 is the largest tried and beat learning_rate=0.0003 on dev (0.700 vs 0.600)"
    ]
    peaked = [(cands[0], 0.5), (cands[1], 0.7), (cands[2], 0.6)]
    assert grid_edges(grid, cands[1], peaked) == []
    falling = [(cands[0], 0.8), (cands[1], 0.6), (cands[2], 0.5)]
    assert "smallest tried" in grid_edges(grid, cands[0], falling)[0]


# ---- a run with a scripted tuner ------------------------------------------------------------------------------

# dev score per epoch of each (learning_rate, rank) candidate
CURVES = {
    (1e-4, 8): [0.2, 0.3, 0.4, 0.45, 0.5, 0.55],  # still rising at max_epochs
    (3e-4, 8): [0.3, 0.6, 0.7, 0.65, 0.6, 0.6],  # peaks at epoch 3
    (1e-3, 8): [0.5, 0.55, 0.5, 0.4, 0.3, 0.3],
}


class ScriptedConfig(StrictModel):
    epochs: int = 3
    learning_rate: float = 1e-4
    rank: int = 8


class ScriptedTuner(Tuner):
    """Trains nothing: one checkpoint per epoch named after its settings, stopping when the strategy says so, at a
    scripted 100 s per epoch."""

    kind = "scripted"
    Config = ScriptedConfig
    trainings: ClassVar[list[tuple[float, int, int]]] = []

    def validate(self, examples):
        lengths = TokenLengths(min=10, p50=10, p95=10, max=10)
        return Preflight(n_examples=len(examples), n_duplicates=0, token_lengths=lengths, max_length=10, n_truncated=0)

    def estimate(self, pre):
        return {"epochs": self.config.epochs}

    def train(self, examples, pre):
        found: list[Checkpoint] = []
        for epoch in range(1, self.config.epochs + 1):
            name = f"lr={self.config.learning_rate};rank={self.config.rank};epoch={epoch}"
            found.append(Checkpoint(float(epoch), epoch * 10, "fake", name, None))
            if self.ctx.on_checkpoint is not None and self.ctx.on_checkpoint(list(found)):
                break
        ScriptedTuner.trainings.append((self.config.learning_rate, self.config.rank, len(found)))
        return TuneResult(found, [], TunerStats(device="cpu", wall_s=100.0 * len(found)))


@pytest.fixture
def scripted(monkeypatch):
    TUNERS.register("scripted", ScriptedTuner)
    ScriptedTuner.trainings = []
    seen: list[str] = []

    def dev_score(self, backend, requests, cases, metas=None, what="answers on dev"):
        seen.extend(c.id for c in cases)
        values = dict(part.split("=") for part in backend.spec.model.split(";"))
        curve = CURVES[(float(values["lr"]), int(values["rank"]))]
        return DevScore(dev_score=curve[int(values["epoch"]) - 1])

    monkeypatch.setattr(FineTune, "dev_score", dev_score)
    yield seen
    TUNERS._refs.pop("scripted", None)


def run_search(tmp_path, tuner_config: dict):
    suite = base_suite()
    suite["strategies"].append(
        {
            "name": "ft",
            "kind": "finetune",
            "backend": "fake",
            "config": {"tuner": {"kind": "scripted", "config": tuner_config}},
        }
    )
    suite["economics"] = {"usd_per_hour": {"cpu": 0.36}}
    record, _ = compare(write_suite(tmp_path / "s", suite), CompareOptions(out=tmp_path / "run"))
    return record, record.strategies["ft"].setup.given


def test_the_search_chooses_on_dev_stops_each_training_early_and_prices_every_training(tmp_path, scripted):
    grid = [1e-4, 3e-4, 1e-3]
    record, given = run_search(tmp_path, {"learning_rate": grid, "epochs": "auto", "max_epochs": 6})
    # 1e-4: still rising at 6 epochs; 3e-4: best at epoch 3, stopped after epoch 4; 1e-3: best at 2, stopped after 3
    assert ScriptedTuner.trainings == [(1e-4, 8, 6), (3e-4, 8, 4), (1e-3, 8, 3)]
    assert given.hyperparameters["learning_rate"] == 3e-4 and given.chosen.epoch == 3
    assert given.chosen.dev_score == pytest.approx(0.7)
    assert [c.dev_scores for c in given.search][1:] == [[0.3, 0.6, 0.7, 0.65], [0.5, 0.55, 0.5]]
    assert [c.stopped_early for c in given.search] == [False, True, True]
    assert [c.chosen for c in given.search] == [False, True, False]
    assert given.dev_still_rising_at_last_epoch is False and given.grid_edge == []  # the best is inside the grid
    costs = {c.what: c.usd for c in given.setup_costs}
    assert costs["training"] == pytest.approx(400 / 3600 * 0.36) and costs["search"] == pytest.approx(900 / 3600 * 0.36)
    assert record.strategies["ft"].cost.setup_usd >= costs["training"] + costs["search"]
    # each checkpoint scored once (the early stop's scores are reused), on dev cases only
    assert len(scripted) == 13 * 6 and all(case_id.startswith("dev-") for case_id in scripted)
    lines = (tmp_path / "run" / "training" / "ft" / "search.jsonl").read_text().splitlines()
    assert [json.loads(line)["values"] for line in lines] == [{"learning_rate": v} for v in grid]


def test_a_search_whose_best_is_still_rising_at_max_epochs_is_under_trained(tmp_path, scripted):
    _, given = run_search(tmp_path, {"learning_rate": 1e-4, "epochs": "auto", "max_epochs": 6})
    assert ScriptedTuner.trainings == [(1e-4, 8, 6)]
    assert given.chosen.epoch == 6 and given.dev_still_rising_at_last_epoch is True
    assert given.search[0].stopped_early is False and given.early_stopping.max_epochs == 6


def test_a_best_on_the_grids_edge_is_recorded_for_the_decision(tmp_path, scripted):
    _, given = run_search(tmp_path, {"learning_rate": [1e-4, 3e-4], "epochs": 3})
    assert given.hyperparameters["learning_rate"] == 3e-4 and given.early_stopping is None
    assert given.grid_edge and "learning_rate=0.0003 is the largest tried" in given.grid_edge[0]
