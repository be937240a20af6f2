"""load_suite: read the YAML, validate the envelope, then each component's Config, then the data.

Everything a run needs is checked here, so a bad suite fails before any model is loaded or paid for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.builtins import BACKENDS, SCORERS, STRATEGIES
from harness.errors import ConfigError, HarnessError, closest
from harness.home import tree_fingerprint
from harness.registry import Registry
from harness.suite.data import Dataset, file_sha256, load_dataset
from harness.suite.locations import Loc, format_loc, line_of, load_yaml_with_lines
from harness.suite.messages import describe_errors
from harness.suite.schema import Suite, seed_of


@dataclass
class LoadedSuite:
    """A validated suite with its component configs parsed and its data loaded."""

    suite: Suite
    path: Path
    dataset: Dataset
    configs: dict[tuple[str, str], BaseModel] = field(default_factory=dict)  # (section, name) -> Config
    lines: dict[Loc, int] = field(default_factory=dict)
    # What this machine cannot run (e.g. a GPU-only tuner on a CPU box), when loaded with machine=False
    machine_notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> Path:
        return self.path.parent

    def config(self, section: str, name: str) -> BaseModel:
        """A component's config, with its defaults filled in; a strategy's seeds share the strategy's."""
        return self.configs[(section, seed_of(name)[0] if section == "strategies" else name)]

    def where(self, loc: Loc) -> str:
        line = line_of(self.lines, loc)
        return f"{self.path}:{line}: {format_loc(loc)}" if line else f"{self.path}: {format_loc(loc)}"


def _fail(messages: list[str]) -> None:
    if messages:
        head = "the suite is not valid:\n" if len(messages) > 1 else ""
        raise ConfigError(head + "\n".join(messages))


def _component_configs(suite: Suite, path: Path, lines: dict[Loc, int]) -> tuple[dict, list[str]]:
    configs: dict[tuple[str, str], BaseModel] = {}
    errors: list[str] = []
    sections: list[tuple[str, Registry, list[Any]]] = [
        ("backends", BACKENDS, suite.backends),
        ("strategies", STRATEGIES, suite.strategies),
        ("scorers", SCORERS, suite.scorers),
    ]
    for section, registry, specs in sections:
        for i, spec in enumerate(specs):
            where = f"{path}:{line_of(lines, (section, i, 'kind')) or '?'}: {section}[{i}].kind"
            try:
                cls = registry.get(spec.kind, where=where)
            except HarnessError as exc:
                errors.append(str(exc))
                continue
            try:
                configs[(section, getattr(spec, "label", None) or spec.name)] = cls.Config.model_validate(spec.config)
            except ValidationError as exc:
                errors += describe_errors(exc, cls.Config, file=path, lines=lines, prefix=(section, i, "config"))
    return configs, errors


def _at(path: Path, lines: dict[Loc, int], loc: Loc) -> str:
    """'suite.yaml:LINE: the.field.path' for a place in the suite file."""
    return f"{path}:{line_of(lines, loc) or '?'}: {format_loc(loc)}"


def _cross_checks(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    errors = []

    def at(loc: Loc) -> str:
        return _at(path, lines, loc)

    for section, items, key in (
        ("backends", suite.backends, "name"),
        ("strategies", suite.strategies, "name"),
        ("scorers", suite.scorers, "label"),
    ):
        seen: set[str] = set()
        for i, item in enumerate(items):
            value = getattr(item, key)
            if value in seen:
                errors.append(f"{at((section, i))}: duplicate name '{value}'. Fix: give each entry its own `name`.")
            seen.add(value)
    if suite.task.instructions is None and suite.data.format != "openai_chat":
        errors.append(
            f"{at(('task',))}: required key 'instructions' is missing (the system prompt; only data.format "
            "openai_chat takes it from the file's system turn). Fix: add `instructions: ...` under task."
        )
    names = [b.name for b in suite.backends]
    for i, strategy in enumerate(suite.strategies):
        if strategy.backend is None and len(names) > 1:
            errors.append(
                f"{at(('strategies', i))}: `backend` is required when the suite has several ({', '.join(names)}). "
                f"Fix: add `backend: <name>` to this strategy, e.g. `backend: {names[0]}`."
            )
        elif strategy.backend is not None and strategy.backend not in names:
            errors.append(
                f"{at(('strategies', i, 'backend'))}: no backend named '{strategy.backend}'.{closest(strategy.backend, names)} "
                f"Fix: use one of the defined backends ({', '.join(names)}), or add a backend with that name."
            )
    for i, scorer in enumerate(suite.scorers):
        judge = scorer.config.get("judge")
        if isinstance(judge, str) and judge not in names:
            errors.append(
                f"{at(('scorers', i, 'config', 'judge'))}: no backend named '{judge}'.{closest(judge, names)} "
                f"Fix: name one of the defined backends ({', '.join(names)}) as the judge, or add one."
            )
        against = scorer.config.get("against")
        strategies = [s.name for s in suite.strategies]
        if isinstance(against, str) and against not in strategies:
            errors.append(
                f"{at(('scorers', i, 'config', 'against'))}: no strategy named '{against}'.{closest(against, strategies)} "
                f"Fix: name the strategy every answer is compared with ({', '.join(strategies)})."
            )
    labels = [s.label for s in suite.scorers]
    if suite.decision and suite.decision.primary_metric and suite.decision.primary_metric not in labels:
        metric = suite.decision.primary_metric
        errors.append(
            f"{at(('decision', 'primary_metric'))}: no scorer named '{metric}'.{closest(metric, labels)} "
            f"Fix: name one of the scorers ({', '.join(labels)}), or add a scorer with that name."
        )
    errors += _decision_checks(suite, labels, at)
    return errors


def _decision_checks(suite: Suite, labels: list[str], at: Callable[[Loc], str]) -> list[str]:
    """Guards name a scorer or a latency/cost measure; per-strategy retrain and re-index periods name strategies
    of the right kind."""
    from harness.suite.schema import COST_GUARDS, LATENCY_GUARDS

    errors: list[str] = []
    decision = suite.decision
    if decision is None:
        return errors
    known = labels + list(LATENCY_GUARDS) + list(COST_GUARDS)
    for i, guard in enumerate(decision.guards):
        if guard.metric not in known:
            errors.append(
                f"{at(('decision', 'guards', i, 'metric'))}: no metric named '{guard.metric}'."
                f"{closest(guard.metric, known)} Fix: name a scorer ({', '.join(labels)}) or one of "
                f"{', '.join(list(LATENCY_GUARDS) + list(COST_GUARDS))}."
            )
    kinds = {s.name: s.kind for s in suite.strategies}
    for key, kind in (("retrain_every_months", "finetune"), ("reindex_every_months", "rag")):
        found = getattr(decision, key)
        for name in found if isinstance(found, dict) else {}:
            if kinds.get(name) != kind:
                mine = [n for n, k in kinds.items() if k == kind]
                what = f"is not a {kind} strategy" if name in kinds else "names no strategy"
                errors.append(
                    f"{at(('decision', key, name))}: '{name}' {what}.{closest(name, mine)} Fix: name a {kind} "
                    f"strategy of this suite" + (f" ({', '.join(mine)})." if mine else ", or give one number for all.")
                )
    return errors


def _primary_metric_applies_to_all(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """The metric that ranks strategies must score every strategy: retrieval and context metrics are diagnostics."""
    metric = suite.primary_metric
    spec = next((s for s in suite.scorers if s.label == metric), None)
    if spec is None or not SCORERS.get(spec.kind).conditional:
        return []
    loc = ("decision", "primary_metric") if suite.decision and suite.decision.primary_metric else ("scorers", 0)
    answer_metrics = [s.label for s in suite.scorers if not SCORERS.get(s.kind).conditional]
    return [
        f"{path}:{line_of(lines, loc) or '?'}: {format_loc(loc)}: '{metric}' scores only strategies that retrieve, so it "
        "cannot rank all strategies. Fix: make an answer metric the primary one"
        + (f" ({', '.join(answer_metrics)})" if answer_metrics else " (e.g. exact_match or token_f1)")
        + "; keep retrieval metrics as diagnostics."
    ]


def _grading_functions(loaded: LoadedSuite) -> list[str]:
    """A python scorer's grading file is imported here (a missing file or function, or a file that does not import,
    fails validation) and the function kept with the scorer's config, the file's path resolved against the suite's
    folder; the file's content joins the data hashes, so an edited grading function changes the fingerprint."""
    from harness.scoring.python_code import GraderError, PythonConfig

    errors = []
    base = loaded.base.resolve()
    for i, spec in enumerate(loaded.suite.scorers):
        config = loaded.configs.get(("scorers", spec.label))
        if not isinstance(config, PythonConfig):
            continue
        where = loaded.where(("scorers", i, "config", "function"))
        problem = outside_suite_folder(config.file, loaded.base)
        try:
            if problem:
                raise GraderError(problem.removesuffix("."))
            sha = config.bind(loaded.base)
        except GraderError as exc:
            errors.append(f"{where}: {exc}.")
            continue
        path = config.path or base / config.file
        loaded.dataset.hashes[str(path.relative_to(base)) if path.is_relative_to(base) else str(path)] = sha
    return errors


def _price_checks(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """Every API model in use needs its token prices (from the price sheet or economics.prices) before a call."""
    from harness.costs.prices import price_sheet, resolve_price

    used = {s.backend or suite.backends[0].name for s in suite.strategies}
    used |= {str(sc.config["judge"]) for sc in suite.scorers if isinstance(sc.config.get("judge"), str)}
    errors = []
    sheet = price_sheet()
    for i, spec in enumerate(suite.backends):
        if spec.name not in used or BACKENDS.get(spec.kind).device != "api":
            continue
        price = resolve_price(spec.model, suite)
        missing = ["input_per_1m_usd", "output_per_1m_usd"] if price is None else price.missing()
        if missing:
            loc: Loc = ("backends", i, "model")
            keys = ", ".join(f"{k}: ..." for k in missing)
            errors.append(
                f"{path}:{line_of(lines, loc) or '?'}: {format_loc(loc)}: no {' or '.join(missing)} for model "
                f"'{spec.model}' in the price sheet {sheet.version} ({sheet.date}) or economics.prices. "
                f"Fix: add `economics: {{prices: {{{spec.model}: {{{keys}}}}}}}` to the suite (dollars per 1M tokens), "
                f"or `same_as: <a priced model>` for a deployment name."
            )
    from harness.costs.prices import embedding_price

    for i, strategy in enumerate(suite.strategies):
        embedder = strategy.config.get("embedder") if isinstance(strategy.config, dict) else None
        if not isinstance(embedder, dict) or embedder.get("kind") != "openai":
            continue
        model = str(embedder.get("model") or "text-embedding-3-small")
        per_1m, _ = embedding_price(model, embedder.get("usd_per_1m_tokens"), suite)
        if per_1m is None:
            loc = ("strategies", i, "config", "embedder")
            errors.append(
                f"{path}:{line_of(lines, loc) or '?'}: {format_loc(loc)}: no price for embedding model '{model}' in the "
                f"price sheet {sheet.version} ({sheet.date}) or the suite. Fix: set `usd_per_1m_tokens` in this embedder's "
                f"config, or add economics.prices.{model}.input_per_1m_usd."
            )
    return errors


def load_suite(path: str | Path, *, with_data: bool = True, machine: bool = True) -> LoadedSuite:
    """Validate a suite file completely; raise ConfigError/DataError with file, line and fix.

    machine: also refuse what this machine cannot run (a GPU-only tuner without a GPU). With False those
    problems are kept in `machine_notes`, so a GPU suite validates on a laptop before it is sent to a GPU box."""
    path = Path(path)
    if path.is_dir():
        path = path / "suite.yaml"
    raw, lines = load_yaml_with_lines(path)
    if not isinstance(raw, dict):
        text = str(raw)
        got = (
            "an empty file"
            if raw is None
            else "a list"
            if isinstance(raw, list)
            else f"the {type(raw).__name__} {text[:40]!r}{'...' if len(text) > 40 else ''}"
        )
        raise ConfigError(
            f"{path}:{line_of(lines, ()) or 1}: expected a mapping of keys (name, task, data, ...), got {got}. "
            "Fix: start from `harness init DIR --from data.jsonl` or see `harness schema`."
        )
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        _fail(describe_errors(exc, Suite, file=path, lines=lines))
        raise  # unreachable: _fail raised
    _fail(_cross_checks(suite, path, lines))
    configs, errors = _component_configs(suite, path, lines)
    _fail(errors)
    _fail(_primary_metric_applies_to_all(suite, path, lines))
    _fail(_price_checks(suite, path, lines))
    if with_data:
        _fail(_data_path_checks(suite, path, lines))
    dataset = (
        load_dataset(suite.data, suite.task, base=path.parent, seed=suite.seed, where=lambda loc: _at(path, lines, loc))
        if with_data
        else Dataset([], [], [], {})
    )
    if suite.task.instructions is None:  # openai_chat: the lines' shared system turn (none: no system prompt)
        task = suite.task.model_copy(update={"instructions": dataset.instructions or ""})
        suite = suite.model_copy(update={"task": task})
    loaded = LoadedSuite(suite=suite, path=path, dataset=dataset, configs=configs, lines=lines)
    _fail(_grading_functions(loaded))
    if with_data:
        _fail(_prompt_checks(loaded) + _data_checks(loaded))
    loaded.machine_notes = _machine_checks(loaded)
    if machine:
        _fail(loaded.machine_notes)
    return loaded


def _data_path_checks(suite: Suite, path: Path, lines: dict[Loc, int]) -> list[str]:
    """Data files live in the suite folder, so the folder is the whole comparison (copied, shared, hashed as one).

    A relative path that leaves it (through '..' or a symbolic link) is refused; data that deliberately lives
    elsewhere is named by its absolute path, which says so."""
    errors = []
    for key in ("source", "train", "dev", "test"):
        rel = getattr(suite.data, key)
        problem = outside_suite_folder(rel, path.parent) if rel is not None else None
        if problem:
            loc = ("data", key)
            errors.append(f"{path}:{line_of(lines, loc) or '?'}: {format_loc(loc)}: {problem}")
    return errors


def outside_suite_folder(rel: str, folder: Path) -> str | None:
    """Why the relative path `rel` (data, a corpus) leaves the suite `folder`, or None when it stays inside."""
    import os

    if Path(rel).is_absolute():
        return None
    base = Path(os.path.abspath(folder))
    real_base = base.resolve()
    lexical = Path(os.path.abspath(base / rel))
    target = lexical.resolve()
    if not lexical.is_relative_to(base):
        return (
            f"'{rel}' goes outside the suite folder ({real_base}) through '..'. Fix: move the file into the suite "
            f"folder, or, if it deliberately lives elsewhere, give its absolute path ({target})."
        )
    link = next((p for p in (lexical, *lexical.parents) if p.is_relative_to(base) and p.is_symlink()), None)
    if link is None:
        return None
    named = (
        f"'{rel}' is a symbolic link to {target}"
        if link == lexical
        else f"'{rel}' goes through the symbolic link '{link.relative_to(base)}' to {target}"
    )
    if not target.exists():
        return (
            f"{named}, which does not exist (a dangling link). Fix: point the link at the data file, or name the "
            "file itself in the suite."
        )
    if not target.is_relative_to(real_base):
        return (
            f"{named}, outside the suite folder ({real_base}). Fix: copy the file into the suite folder, or, if it "
            f"deliberately lives elsewhere, give its absolute path ({target})."
        )
    return None


def _machine_checks(loaded: LoadedSuite) -> list[str]:
    notes = []
    for i, spec in enumerate(loaded.suite.strategies):
        check = getattr(STRATEGIES.get(spec.kind), "machine_check", None)
        if check is None:
            continue
        for loc, problem in check(loaded.config("strategies", spec.name)):
            notes.append(f"{loaded.where(('strategies', i, 'config') + tuple(loc))}: {problem}")
    return notes


def _prompt_checks(loaded: LoadedSuite) -> list[str]:
    """A strategy's own prompt template names only fields every case has (it is rendered from each row)."""
    errors = []
    cases = [*loaded.dataset.train, *loaded.dataset.dev, *loaded.dataset.test]
    fields = set.intersection(*(set(c.fields) for c in cases)) if cases else set()
    for i, spec in enumerate(loaded.suite.strategies):
        if spec.prompt_template is None:
            continue
        task = loaded.suite.task_for(spec)
        for name in task.template_fields():
            if name not in fields:
                errors.append(
                    f"{loaded.where(('strategies', i, 'prompt_template'))}: names field '{name}', which not every "
                    f"case has.{closest(name, fields)} Fields every case has: {', '.join(sorted(fields))}. "
                    "Fix: name one of them, or add the field to the data."
                )
    return errors


def _data_checks(loaded: LoadedSuite) -> list[str]:
    """Checks that need both a component's config and the data (e.g. k exemplars <= train size)."""
    errors = []
    for i, spec in enumerate(loaded.suite.strategies):
        cls = STRATEGIES.get(spec.kind)
        config = loaded.config("strategies", spec.name)
        unseeded = getattr(cls, "unseeded", None)
        why = unseeded(config, loaded.suite) if unseeded is not None and spec.seeds > 1 else None
        if why:
            errors.append(
                f"{loaded.where(('strategies', i, 'seeds'))}: seeds: {spec.seeds}, but {why}. Fix: remove `seeds`, "
                "or use the suite's `repeats` to measure sampling variation."
            )
        check = getattr(cls, "check", None)
        if check is None:
            continue
        found = list(check(config, loaded.dataset, loaded.suite.for_strategy(spec)))
        for loc, problem in found:
            errors.append(f"{loaded.where(('strategies', i, 'config') + tuple(loc))}: {problem}")
        if not found:
            base = loaded.base.resolve()
            for path in cls.data_files(config, loaded.base):
                key = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
                loaded.dataset.hashes[key] = file_sha256(path) if path.is_file() else tree_fingerprint(path)
    errors += _scorer_files(loaded)
    return errors


def _scorer_files(loaded: LoadedSuite) -> list[str]:
    """Files a scorer reads from the suite's folder (a rubric): each must exist, and its content is part of the
    suite's fingerprint, so an edited rubric is a different measurement."""
    errors = []
    base = loaded.base.resolve()
    for i, spec in enumerate(loaded.suite.scorers):
        files = getattr(SCORERS.get(spec.kind), "resolve_files", None)
        if files is None:
            continue
        for loc, path in files(loaded.config("scorers", spec.label), base):
            if not path.is_file():
                errors.append(
                    f"{loaded.where(('scorers', i, 'config', *loc))}: {path} does not exist. Fix: give a path "
                    f"relative to the suite's folder ({base}) of a file that exists, or write the text inline."
                )
                continue
            key = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
            loaded.dataset.hashes[key] = file_sha256(path)
    return errors
