"""The finetune strategy with the local tuner on a tiny random Llama: every epoch scored on dev, the best kept,
logs and costs recorded, a finished fine-tune reused, an interrupted one resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ConfigError, DataError
from harness.run.compare import CompareOptions, compare
from harness.suite.load import load_suite
from strategies.finetune.search import patience_exhausted
from tests.conftest import LABELS, base_suite, write_suite


def ft_suite(tiny_model, **tuner):
    suite = base_suite()
    suite["backends"] = [
        {
            "name": "tiny",
            "kind": "hf",
            "model": str(tiny_model),
            "generation": {"max_new_tokens": 4},
            "config": {"batch_size": 8},
        }
    ]
    suite["strategies"] = [
        {"name": "zero", "kind": "zero_shot"},
        {
            "name": "ft",
            "kind": "finetune",
            "config": {
                "tuner": {
                    "kind": "local",
                    "config": {"epochs": 2, "batch_size": 4, "rank": 4, "alpha": 8, "learning_rate": 5e-3, **tuner},
                }
            },
        },
    ]
    suite["economics"] = {"usd_per_hour": {"cpu": 0.36}}
    return suite


def test_finetune_scores_each_epoch_on_dev_and_serves_the_best(tiny_model, tmp_path):
    path = write_suite(tmp_path / "s", ft_suite(tiny_model))
    record, run = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    given = record.strategies["ft"].setup.given
    assert given.epochs_trained == 2 and len(given.dev_scores) == 2
    assert given.chosen.on == "dev" and given.chosen.dev_score == max(given.dev_scores)
    assert given.preflight.n_examples == 12 and given.preflight.n_truncated == 0
    stats = given.training
    assert stats.device == "cpu" and stats.steps == 6 and stats.trained_tokens > 0 and stats.wall_s > 0
    assert stats.precision == "fp32" and "CPU" in (stats.precision_why or "")  # chosen, and why
    assert given.setup_costs[0].usd == pytest.approx(stats.wall_s / 3600 * 0.36, rel=1e-2)
    serving = record.strategies["ft"].setup.serving
    assert serving["adapter_sha"] and serving["adapter_sha"] != record.strategies["zero"].setup.serving["adapter_sha"]
    curve = [json.loads(x) for x in (tmp_path / "run" / "training" / "ft" / "curve.jsonl").read_text().splitlines()]
    assert [row["step"] for row in curve] == [1, 2, 3, 4, 5, 6] and all(row["loss"] > 0 for row in curve)
    epochs = [json.loads(x) for x in (tmp_path / "run" / "training" / "ft" / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1.0, 2.0]
    assert run.counts.dev_calls == 12  # 6 dev cases x 2 checkpoints

    # The same fine-tune in another run folder is reused: no training, dev answers from the cache.
    from strategies.finetune.local import LocalTuner

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fine-tune must not be trained again")

    mp = pytest.MonkeyPatch()
    mp.setattr(LocalTuner, "train", no_training)
    try:
        again, run2 = compare(path, CompareOptions(out=tmp_path / "run2"))
    finally:
        mp.undo()
    assert again.strategies["ft"].setup.given.reused_from_cache is True
    assert run2.counts.dev_calls == 0 and run2.counts.model_calls == 0
    assert (
        again.strategies["ft"].metrics["label_accuracy"].mean == record.strategies["ft"].metrics["label_accuracy"].mean
    )


def test_interrupted_training_resumes_from_its_last_checkpoint(tiny_model, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    class StopAfterFirstEpoch(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.epoch and state.epoch < 2:
                raise KeyboardInterrupt  # as if the machine went away after the first checkpoint

    from trl import SFTTrainer

    real_init = SFTTrainer.__init__

    def init_with_callback(self, *a, **kw):
        real_init(self, *a, **kw)
        self.add_callback(StopAfterFirstEpoch())

    monkeypatch.setattr(SFTTrainer, "__init__", init_with_callback)
    path = write_suite(tmp_path / "s", ft_suite(tiny_model, learning_rate=4e-3))
    with pytest.raises(KeyboardInterrupt):
        compare(path, CompareOptions(out=tmp_path / "run", strategies=["ft"]))
    monkeypatch.setattr(SFTTrainer, "__init__", real_init)
    record, _ = compare(path, CompareOptions(out=tmp_path / "run", strategies=["ft"]))
    given = record.strategies["ft"].setup.given
    assert given.training.resumed is True and given.epochs_trained == 2
    # cost and tokens cover the whole training, not only the resumed half
    assert given.training.trained_tokens == 2 * given.preflight.total_tokens
    first_half = json.loads(
        next((tmp_path / "harness-home" / "tuning").rglob("checkpoint-3/harness-elapsed.json")).read_text()
    )
    assert given.training.wall_s > first_half["wall_s"] > 0
    curve = [json.loads(x) for x in (tmp_path / "run" / "training" / "ft" / "curve.jsonl").read_text().splitlines()]
    assert [row["step"] for row in curve] == [1, 2, 3, 4, 5, 6]  # steps 1-3 come from the first process's state


@pytest.mark.parametrize(
    "tuner, expected",
    [
        ({"method": "qlora", "device": "cpu"}, "qlora needs a CUDA GPU"),
        ({"rank": 0}, "strategies[1].config.tuner.config.rank"),
        ({"epochs": 0}, "strategies[1].config.tuner.config.epochs"),
        ({"method": "dpo"}, "strategies[1].config.tuner.config.method"),
        ({"rnak": 8}, "unknown key 'rnak'. Did you mean 'rank'?"),
    ],
)
def test_bad_tuner_settings_fail_before_training(tiny_model, tmp_path, tuner, expected):
    path = write_suite(tmp_path / "s", ft_suite(tiny_model, **tuner))
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_suite(path)


def test_too_few_training_examples_is_refused(tiny_model, tmp_path):
    path = write_suite(tmp_path / "s", ft_suite(tiny_model), n_train=6)
    with pytest.raises(ConfigError, match="only 6 training examples; at least 10"):
        load_suite(path)


def test_truncation_is_refused_unless_allowed(tiny_model, tmp_path):
    path = write_suite(tmp_path / "s", ft_suite(tiny_model, max_length=16))
    with pytest.raises(DataError, match="would be truncated"):
        compare(path, CompareOptions(out=tmp_path / "run", strategies=["ft"]))


def test_merged_adapter_serves_the_same_answers(tiny_model, tmp_path):
    suite = ft_suite(tiny_model, epochs=1)
    suite["strategies"][1]["config"]["merge"] = True
    path = write_suite(tmp_path / "s", suite)
    record, _ = compare(path, CompareOptions(out=tmp_path / "run", strategies=["ft"]))
    given = record.strategies["ft"].setup.given
    assert given.merged.identical == given.merged.parity_cases == 6 and given.merged.used is True
    serving = record.strategies["ft"].setup.serving
    assert serving["adapter_sha"] is None and serving["model"].endswith("merged-step3")


@pytest.mark.slow  # two training processes under accelerate launch
def test_two_cpu_processes_train_the_same_adapter(tiny_model, tmp_path):
    """`num_processes: 2` trains under accelerate launch (DDP over gloo); both ranks end with identical weights."""
    path = write_suite(tmp_path / "s", ft_suite(tiny_model, epochs=1, batch_size=2, num_processes=2))
    record, _ = compare(path, CompareOptions(out=tmp_path / "run", strategies=["ft"]))
    given = record.strategies["ft"].setup.given
    assert given.training.steps == 3  # 12 examples / (2 per process x 2 processes)
    workdir = __import__("pathlib").Path(given.workdir)
    digests = [(workdir / f"rank-{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert given.chosen.on == "dev" and record.strategies["ft"].n_done == 9


@pytest.mark.slow  # lm-eval over the base and the fine-tuned model
def test_forgetting_check_scores_base_and_fine_tuned_model_with_lm_eval(tiny_model, tmp_path):
    suite = ft_suite(tiny_model, epochs=1)
    suite["strategies"][1]["config"]["forgetting_check"] = True
    path = write_suite(tmp_path / "s", suite)
    record, _ = compare(path, CompareOptions(out=tmp_path / "run", strategies=["ft"]))
    check = record.strategies["ft"].setup.given.forgetting
    assert check.n == 70 and 0 <= check.before <= 1 and 0 <= check.after <= 1
    assert check.delta == pytest.approx(check.after - check.before)
    assert check.stderr["before"] > 0


def test_local_tuner_reports_status_and_events(tiny_model, tmp_path):
    from harness.suite.load import load_suite
    from harness.suite.schema import BackendSpec
    from harness.tuner import TuneContext
    from strategies.finetune.local import LocalConfig, LocalTuner
    from strategies.finetune.strategy import training_examples

    path = write_suite(tmp_path / "s", ft_suite(tiny_model))
    loaded = load_suite(path)
    spec = BackendSpec.model_validate(loaded.suite.backends[0].model_dump())
    tuner = LocalTuner(
        LocalConfig(epochs=1, batch_size=4, rank=4), TuneContext(spec, str(tiny_model), tmp_path / "work", 1)
    )
    assert tuner.status() == "not_started" and tuner.events() == []
    examples = training_examples(loaded.suite.task, loaded.dataset.train)
    result = tuner.train(examples, tuner.validate(examples))
    assert tuner.status() == "running_or_interrupted"  # checkpoints, but the strategy has not recorded a result yet
    assert [e["step"] for e in tuner.events() if "loss" in e] == [1, 2, 3] and len(result.checkpoints) == 1


def test_a_half_written_checkpoint_is_set_aside_on_resume(tiny_model, tmp_path):
    from harness.suite.schema import BackendSpec
    from harness.tuner import TuneContext
    from strategies.finetune.local import LocalConfig, LocalTuner
    from strategies.finetune.strategy import training_examples

    path = write_suite(tmp_path / "s", ft_suite(tiny_model))
    loaded = load_suite(path)
    spec = BackendSpec.model_validate(loaded.suite.backends[0].model_dump())
    work = tmp_path / "work"
    (work / "checkpoints" / "checkpoint-99").mkdir(parents=True)  # killed while saving: no trainer_state.json
    tuner = LocalTuner(LocalConfig(epochs=1, batch_size=4, rank=4), TuneContext(spec, str(tiny_model), work, 1))
    examples = training_examples(loaded.suite.task, loaded.dataset.train)
    result = tuner.train(examples, tuner.validate(examples))
    assert [c.step for c in result.checkpoints] == [3] and result.stats.resumed is False
    assert list((work / "checkpoints").glob("incomplete-checkpoint-99-*"))


def test_prompts_filling_max_length_are_refused(tiny_model, tmp_path):
    path = write_suite(tmp_path / "s", ft_suite(tiny_model, max_length=16, max_truncated_fraction=1.0))
    with pytest.raises(DataError, match="nothing of their answer would be trained"):
        compare(path, CompareOptions(out=tmp_path / "run", strategies=["ft"]))


def test_rag_can_serve_from_the_fine_tunes_model_and_carries_its_training_cost(tiny_model, tmp_path):
    suite = ft_suite(tiny_model, epochs=1)
    (tmp_path / "s").mkdir(parents=True)
    (tmp_path / "s" / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"id": w, "title": w, "text": f"Requests about {w} are labelled {w}."}) + "\n"
            for w in ("alpha", "beta", "gamma")
        )
    )
    suite["strategies"].append(
        {
            "name": "ft_rag",
            "kind": "rag",
            "config": {"corpus": "corpus.jsonl", "retriever": "bm25", "top_k": 1, "model_from": "ft"},
        }
    )
    record, _ = compare(write_suite(tmp_path / "s", suite), CompareOptions(out=tmp_path / "run"))
    ft, both = record.strategies["ft"].setup, record.strategies["ft_rag"].setup
    assert both.serving == ft.serving and ft.serving["adapter_sha"]  # the fine-tune's own adapter answers
    training = ft.given.setup_costs[0]
    shared = [c for c in both.given.setup_costs if c.what.startswith("training")]
    assert [c.usd for c in shared] == [training.usd] and shared[0].paid_usd == 0
    costs = record.strategies["ft_rag"].cost
    assert costs.setup_usd >= training.usd + record.strategies["ft_rag"].cost.setup_usd_where(what="indexing")
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    assert all("Context:" in x["prompt"] for x in lines if x["strategy"] == "ft_rag")


def test_model_from_must_name_a_fine_tune_listed_before_it(tiny_model, tmp_path):
    from tests.conftest import assert_refused, harness_cli

    suite = ft_suite(tiny_model, epochs=1)
    (tmp_path / "s").mkdir(parents=True)
    (tmp_path / "s" / "corpus.jsonl").write_text(json.dumps({"id": "a", "title": "a", "text": "alpha"}) + "\n")
    rag = {
        "name": "ft_rag",
        "kind": "rag",
        "config": {"corpus": "corpus.jsonl", "retriever": "bm25", "model_from": "zero"},
    }
    suite["strategies"].append(rag)
    path = write_suite(tmp_path / "s", suite)
    assert_refused(
        harness_cli("validate", str(path), home=tmp_path / "home"),
        "strategies[2].config.model_from",
        "'zero' is not a finetune strategy",
        "(ft)",
    )
    rag["config"]["model_from"] = "ft"
    suite["strategies"] = [suite["strategies"][0], rag, suite["strategies"][1]]  # the fine-tune after it
    path = write_suite(tmp_path / "s", suite)
    result = harness_cli("compare", str(path), "--out", str(tmp_path / "run"), home=tmp_path / "home")
    assert_refused(result, "config.model_from names 'ft'", "list 'ft' before 'ft_rag'")
    assert not list((tmp_path / "home").glob("tuning/*/result.json"))  # refused before any training


@pytest.mark.slow  # four short trainings of the tiny model
def test_a_search_with_epochs_auto_stops_training_where_dev_stops_improving(tiny_model, tmp_path):
    tuner = {"learning_rate": [1e-7, 5e-3], "epochs": "auto", "patience": 1, "max_epochs": 4}
    suite = ft_suite(tiny_model, **tuner)
    record, run = compare(write_suite(tmp_path / "s", suite), CompareOptions(out=tmp_path / "run"))
    given = record.strategies["ft"].setup.given
    assert [c.values for c in given.search] == [{"learning_rate": 1e-7}, {"learning_rate": 5e-3}]
    frozen, moving = given.search
    # a learning rate too small to change a greedy answer: dev cannot improve, training stops after epoch 2 of 4
    assert frozen.epochs_trained == 2 and frozen.stopped_early and frozen.dev_scores[0] == frozen.dev_scores[1]
    for c in given.search:  # every training ran exactly until the rule said stop (or to max_epochs)
        stopped_at = next((i + 1 for i in range(len(c.dev_scores)) if patience_exhausted(c.dev_scores[: i + 1], 1)), 4)
        assert c.epochs_trained == stopped_at
    best = max(given.search, key=lambda c: (c.best_dev_score, -given.search.index(c)))
    assert best.chosen and given.hyperparameters["learning_rate"] == best.values["learning_rate"]
    assert given.chosen.dev_score == best.best_dev_score
    assert given.training.trained_tokens == given.epochs_trained * given.preflight.total_tokens
    # every checkpoint of every training was scored once on dev (6 cases), early stop included
    assert run.counts.dev_calls == 6 * (frozen.epochs_trained + moving.epochs_trained)
    costs = {c.what: c.usd for c in given.setup_costs}
    other = next(c for c in given.search if not c.chosen)
    assert costs["search"] == pytest.approx(other.training_usd, rel=1e-6)


@pytest.mark.slow  # two short trainings of the tiny model
def test_seeds_train_a_fine_tune_once_per_seed_and_a_seeded_rag_serves_each_seeds_model(tiny_model, tmp_path):
    suite = ft_suite(tiny_model, epochs=1)
    suite["strategies"][1]["seeds"] = 2
    (tmp_path / "s").mkdir(parents=True)
    (tmp_path / "s" / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"id": w, "text": f"Requests about {w} are labelled {w}."}) + "\n" for w in ("alpha", "beta")
        )
    )
    suite["strategies"].append(
        {
            "name": "ft_rag",
            "kind": "rag",
            "seeds": 2,
            "config": {"corpus": "corpus.jsonl", "retriever": "bm25", "top_k": 1, "model_from": "ft"},
        }
    )
    record, _ = compare(write_suite(tmp_path / "s", suite), CompareOptions(out=tmp_path / "run"))
    ft, ft_rag = record.strategies["ft"], record.strategies["ft_rag"]
    assert [s.name for s in ft.seeds] == ["ft", "ft@seed2"] and [s.seed for s in ft.seeds] == [7, 8]
    second = ft.seeds[1].setup
    assert second.given.kind == "finetune" and second.given.workdir != ft.setup.given.workdir  # its own training
    assert second.serving["adapter_sha"] != ft.setup.serving["adapter_sha"]
    assert (tmp_path / "run" / "training" / "ft@seed2" / "epochs.jsonl").exists()
    # seed i of the retrieving strategy answers with training i
    assert ft_rag.setup.serving == ft.setup.serving and ft_rag.seeds[1].setup.serving == second.serving
    # production trains once: setup is one seed's training; the second training is in what the run spent
    trainings = [i for i in ft.cost.setup_items if i.what == ft.setup.given.setup_costs[0].what]
    assert [i.usd for i in trainings] == [ft.setup.given.setup_costs[0].usd]
    assert ft.cost.run_usd >= ft.cost.setup_usd + second.given.setup_costs[0].usd - 1e-12
    assert any("1 other seed(s)" in note for note in ft.cost.notes)
    assert ft.n_done == 2 * 9 and ft.metrics["label_accuracy"].ci_method.startswith("two-stage bootstrap")


@pytest.mark.slow  # two short trainings of the tiny model
def test_a_fine_tune_can_train_and_serve_with_the_context_a_rag_strategy_retrieves(tiny_model, tmp_path):
    from tests.conftest import assert_refused, harness_cli

    suite = ft_suite(tiny_model, epochs=1)
    (tmp_path / "s").mkdir(parents=True)
    (tmp_path / "s" / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": w, "text": f"Requests about {w} are labelled {w}."}) + "\n" for w in LABELS)
    )
    rag = {"name": "rag", "kind": "rag", "config": {"corpus": "corpus.jsonl", "retriever": "bm25", "top_k": 1}}
    ft_ctx = {**suite["strategies"][1], "name": "ft_ctx"}
    ft_ctx["config"] = {**ft_ctx["config"], "context_from": "zero"}
    suite["strategies"] += [rag, ft_ctx]
    path = write_suite(tmp_path / "s", suite)
    assert_refused(
        harness_cli("validate", str(path), home=tmp_path / "home"),
        "strategies[3].config.context_from",
        "'zero' is not a rag strategy",
        "(rag)",
    )
    ft_ctx["config"]["context_from"] = "rag"
    record, _ = compare(write_suite(tmp_path / "s", suite), CompareOptions(out=tmp_path / "run"))
    closed, with_context = record.strategies["ft"].setup, record.strategies["ft_ctx"].setup
    assert with_context.given.workdir != closed.given.workdir  # trained on other prompts: its own training
    examples = [json.loads(x) for x in (Path(with_context.given.workdir) / "examples.jsonl").read_text().splitlines()]
    assert len(examples) == 12 and all("Context:" in json.dumps(e["prompt"]) for e in examples)
    assert "Context:" not in (Path(closed.given.workdir) / "examples.jsonl").read_text()
    lines = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    served = [x for x in lines if x["strategy"] == "ft_ctx"]
    assert len(served) == 9 and all("Context:" in x["prompt"] for x in served)  # served as it was trained
    assert all(x["meta"]["retrieval"]["chunk_ids"] for x in served)
    indexing = [c for c in with_context.given.setup_costs if c.what.startswith("indexing")]
    rag_indexing = next(c for c in record.strategies["rag"].setup.given.setup_costs if c.what == "indexing")
    assert [c.usd for c in indexing] == [rag_indexing.usd] and indexing[0].paid_usd == 0  # priced with both setups


def test_learning_curve_trains_nested_subsets_and_prices_more_data(tiny_model, tmp_path):
    suite = ft_suite(tiny_model)
    suite["strategies"][1]["config"]["learning_curve"] = [0.85, 1.0]  # 11 of the 12 train cases
    suite["economics"]["data"] = {"usd_per_example": 0.5}
    path = write_suite(tmp_path / "s", suite)
    record, _ = compare(path, CompareOptions(out=tmp_path / "run"))
    assert record.status == "complete"
    assert set(record.strategies) == {"zero", "ft"}  # the subset is a measurement, not an option
    (curve,) = record.decision.learning_curves
    half, full = curve.points
    assert (half.name, half.n_examples, full.name, full.n_examples) == ("ft@curve0.85", 11, "ft", 12)
    assert half.setup.given.preflight.n_examples == 11
    assert half.n_cases == full.n_cases == record.strategies["ft"].metrics["label_accuracy"].n
    assert full.mean == record.strategies["ft"].metrics["label_accuracy"].mean
    assert curve.fit.status in {"flat", "cannot_extrapolate"}  # two points never support an extrapolation
    more = curve.more_data
    assert more.more_examples == 12 and more.labelling_usd == pytest.approx(6.0)
    assert more.sentence in record.decision.reasons
    # a fraction whose subset is too small to train is refused before any model is loaded
    suite["strategies"][1]["config"]["learning_curve"] = [0.5, 1.0]
    with pytest.raises(
        ConfigError, match=r"learning_curve\[0\].*0.5 of the train split is 6 examples.*larger fraction"
    ):
        load_suite(write_suite(tmp_path / "small", suite))
    # the fine-tune is charged for the 12 train and 6 dev examples it used; zero-shot for none
    items = {i.what: i.usd for i in record.strategies["ft"].cost.setup_items}
    assert items["data preparation (18 labelled examples: 12 train + 6 dev)"] == pytest.approx(9.0)
    assert not any(i.what.startswith("data") for i in record.strategies["zero"].cost.setup_items)


@pytest.mark.parametrize("damage", ["adapter cut short", "garbage result"])
def test_a_damaged_finished_fine_tune_is_trained_again_not_served(tiny_model, tmp_path, damage, caplog):
    import logging

    from harness.home import harness_home

    def outputs(run_dir: Path) -> dict:
        rows = [json.loads(x) for x in (run_dir / "cases.jsonl").read_text().splitlines()]
        return {(r["strategy"], r["case_id"]): r["output"] for r in rows}

    path = write_suite(tmp_path / "s", ft_suite(tiny_model, epochs=1))
    compare(path, CompareOptions(out=tmp_path / "clean"))
    [workdir] = [p for p in (harness_home() / "tuning").iterdir() if (p / "result.json").exists()]
    if damage == "adapter cut short":
        [weights] = list(workdir.glob("checkpoints/checkpoint-*/adapter_model.safetensors"))
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (workdir / "result.json").write_text('{"checkpoints": [{"epoch"')
    with caplog.at_level(logging.WARNING):
        record, _ = compare(path, CompareOptions(out=tmp_path / "after", use_cache=False))
    assert "the fine-tune" in caplog.text and "was damaged" in caplog.text and "training it again" in caplog.text
    assert len(list(workdir.parent.glob(f"{workdir.name}.damaged-*"))) == 1
    assert record.strategies["ft"].setup.given.reused_from_cache is False
    assert outputs(tmp_path / "after") == outputs(tmp_path / "clean")
