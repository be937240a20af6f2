"""`harness tune`: one finetune strategy's training outside a run (reused by `harness compare` after), its
tuner's input files written for use elsewhere (`--export-only`, e.g. AutoTrain's UI), or the finished fine-tune
written for a serving engine (`--serve-out`: merged model or adapter, as vLLM, TGI and llama.cpp load them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.builtins import BACKENDS, STRATEGIES, TUNERS
from harness.costs.calibrate import answer_precision
from harness.errors import ConfigError
from harness.strategy import StrategyContext
from harness.suite.load import LoadedSuite, load_suite


def _finetune(loaded: LoadedSuite, name: str | None, *, model: bool = True):
    """The finetune strategy `name` (the only one when None); `model=False`: only its prompts are needed, so the
    base model is not looked up (nor fetched)."""
    specs = [s for s in loaded.suite.strategies if s.kind == "finetune"]
    if name is not None:
        specs = [s for s in specs if s.name == name]
    if len(specs) != 1:
        names = ", ".join(s.name for s in loaded.suite.strategies if s.kind == "finetune") or "none"
        what = f"no finetune strategy named '{name}'" if name else "the suite has several finetune strategies"
        if not name and not specs:
            what = "the suite has no finetune strategy"
        raise ConfigError(
            f"{loaded.path}: --strategy: {what} (finetune strategies: {names}). Fix: pass --strategy NAME."
        )
    spec = specs[0]
    if loaded.config("strategies", spec.name).model_dump().get("context_from"):
        raise ConfigError(
            f"{loaded.path}: strategy '{spec.name}' trains with context retrieved by another strategy "
            "(config.context_from), which only a run prepares. Fix: use `harness compare` (it trains it first), "
            "or tune a strategy without context_from."
        )
    backend_spec = next(b for b in loaded.suite.backends if b.name == (spec.backend or loaded.suite.backends[0].name))
    backend = BACKENDS.get(backend_spec.kind)(backend_spec, loaded.config("backends", backend_spec.name))
    if model:
        answer_precision(backend, loaded, measure=False)  # the dtype a run settled for it, when one did
    ctx = StrategyContext(
        loaded.suite.for_strategy(spec),
        loaded.dataset,
        backend,
        Path(tempfile.gettempdir()) / "harness-tune-unused",  # nothing here writes a run folder
        loaded.suite.seed,
    )
    return STRATEGIES.get(spec.kind)(spec, loaded.config("strategies", spec.name), ctx)


def export_tuning(suite: Path, name: str | None, out: Path) -> list[Path]:
    loaded = load_suite(suite, machine=False)  # exporting for another machine needs nothing of this one
    strategy = _finetune(loaded, name)
    tuner, examples = strategy.make_tuner()
    if not hasattr(tuner, "export"):
        raise ConfigError(
            f"{loaded.path}: strategy '{strategy.spec.name}': the {tuner.kind} tuner has nothing to export. "
            "Fix: set tuner.kind: autotrain (same config keys as local) to write AutoTrain's files."
        )
    out.mkdir(parents=True, exist_ok=True)
    return tuner.export(examples, tuner.validate(examples), out)


def export_openai_chat(suite: Path, name: str | None, out: Path) -> list[str]:
    """The train and dev splits as the OpenAI chat fine-tuning file (train.jsonl, validation.jsonl), prompted as
    the finetune strategy trains (the task's prompt when the suite has none), checked as the openai tuner checks
    its upload; test.jsonl beside them is the held-out set, never to be uploaded."""
    from harness.suite.chat_format import chat_lines
    from harness.suite.prompts import build_messages
    from harness.tuner import TrainExample

    loaded = load_suite(suite, machine=False)  # a file for another service needs nothing of this machine
    if name is not None or any(s.kind == "finetune" for s in loaded.suite.strategies):
        strategy = _finetune(loaded, name, model=False)
        examples, how = strategy.examples, f"as strategy '{strategy.spec.name}' prompts them"
    else:

        def examples(cases):
            return [
                TrainExample(id=c.id, prompt=build_messages(loaded.suite.task, c), completion=c.target) for c in cases
            ]

        how = "with the task's prompt (the suite has no finetune strategy)"
    data = loaded.dataset
    train = examples(data.train)
    if not train:
        raise ConfigError(f"{loaded.path}: data: the suite has no train split to export. Fix: add data.train.")
    pre = TUNERS.get("openai").check_file(train)  # as the openai tuner checks its upload
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for file, cases, role in (
        ("train.jsonl", data.train, "training_file"),
        ("validation.jsonl", data.dev, "validation_file"),
        ("test.jsonl", data.test, "held out: harness scores on it; never upload it"),
    ):
        if not cases:
            continue
        chosen = train if file == "train.jsonl" else examples(cases)
        (out / file).write_text(chat_lines([(e.prompt, e.completion) for e in chosen]), encoding="utf-8")
        lines.append(f"wrote {out / file} ({len(chosen)} conversations; {role})")
    lines += [
        f"  prompts {how}; {pre.n_examples} training examples, {pre.total_tokens:,} tokens per epoch "
        f"(longest {pre.token_lengths.max:,})" + (f"; {'; '.join(pre.warnings)}" if pre.warnings else ""),
        f"next: upload train.jsonl{' and validation.jsonl' if data.dev else ''} for fine-tuning (OpenAI or Azure "
        "OpenAI), then compare the tuned model through an openai backend; or read the files back with "
        "`data: {train: train.jsonl, dev: validation.jsonl, test: test.jsonl, format: openai_chat}`",
    ]
    return lines


def train_only(suite: Path, name: str | None) -> list[str]:
    loaded = load_suite(suite)
    strategy = _finetune(loaded, name)
    search = strategy.search()
    lines = []
    for candidate in search.candidates:
        run = strategy.train_or_reuse(candidate, search.early_stop)
        result, tuner = run.result, run.tuner
        what = f" ({candidate.label})" if candidate.values else ""
        lines += [
            f"{strategy.spec.name}{what}: {'reused the finished' if run.reused else 'trained a'} {tuner.kind} "
            f"fine-tune in {tuner.ctx.workdir}",
            f"  {run.pre.n_examples} examples, {len(result.checkpoints)} checkpoint(s), device {result.stats.device}, "
            f"{result.stats.wall_s} s",
        ]
        lines += [f"  epoch {c.epoch} step {c.step}: {c.adapter or c.model}" for c in result.checkpoints]
    if search.early_stop is not None:
        lines.append(
            "  epochs: auto: trained to max_epochs here (no scorer outside a run); compare scores each epoch on dev "
            "and stops scoring where dev stopped improving"
        )
    lines.append(f"next: harness compare {loaded.path} (reuses this training and scores each checkpoint on dev)")
    return lines


def export_for_serving(suite: Path, name: str | None, out: Path, fmt: str, run_dir: Path | None) -> list[str]:
    """The fine-tune a run chose on dev (`run_dir`), or this suite's finished training, written to `out`."""
    from harness.records.setup import FineTuneGiven
    from harness.run.folder import read_run

    loaded = load_suite(suite)
    strategy = _finetune(loaded, name)
    where: dict = {}
    if run_dir is not None:
        record = read_run(run_dir)
        result = record.strategies.get(strategy.spec.name)
        given = result.setup.given if result is not None and result.setup is not None else None
        if not isinstance(given, FineTuneGiven):
            raise ConfigError(
                f"{run_dir / 'run.json'}: strategies.{strategy.spec.name}: no finished fine-tune recorded "
                "(the run stopped before it, or ran other strategies). Fix: let `harness compare` finish that "
                "strategy, or leave out --run to export this suite's last checkpoint."
            )
        score = f", dev score {given.chosen.dev_score:.4f}" if given.chosen.dev_score is not None else ""
        where = {
            "workdir": Path(given.workdir),
            "step": given.chosen.step,
            "chosen_how": f"chosen on {given.chosen.on} by the run in {run_dir} (epoch {given.chosen.epoch:g}{score})",
        }
    exported = strategy.export_for_serving(out, fmt, str(loaded.path), **where)
    return [
        f"wrote {exported.folder} ({exported.format}: {', '.join(p.name for p in exported.files)})",
        f"  checkpoint: {exported.chosen_how}",
        f"  parity: {exported.identical}/{exported.parity_cases} greedy answers identical to the fine-tune as "
        "harness served it",
        f"next: see {exported.folder / 'SERVING.md'} (vLLM, TGI, llama.cpp; then compare it through an openai backend "
        "with base_url)",
    ]
