"""The fine-tune's hyperparameter search, chosen on dev like RAG's `top_k`.

In a finetune strategy's tuner config, `learning_rate`, `rank` and `epochs` may each be a short list of candidates;
their product (at most 8 trainings, all with the run's seed) is trained and every epoch of every candidate is scored
on dev; the best (candidate, epoch) answers test. `epochs: auto` trains until the dev score has not improved for
`patience` epochs, at most `max_epochs`. All of this reads only the config and the dev scores, never test.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

SEARCHABLE = ("learning_rate", "rank", "epochs")
MAX_CANDIDATES = 8
AUTO_KEYS = ("patience", "max_epochs")
DEFAULT_PATIENCE = 1
DEFAULT_MAX_EPOCHS = 6

Problem = tuple[tuple[str | int, ...], str]


@dataclass
class EarlyStop:
    """`epochs: auto`: stop once the dev score has not improved for `patience` epochs, at most `max_epochs`."""

    patience: int = DEFAULT_PATIENCE
    max_epochs: int = DEFAULT_MAX_EPOCHS


@dataclass
class Candidate:
    """One training of the search: the tuner config it trains with and the searched values that make it differ."""

    config: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)  # searched key -> this candidate's value

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items()) or "the configured settings"


@dataclass
class Search:
    candidates: list[Candidate]
    grid: dict[str, list[Any]]  # searched key -> its candidate values, in the order given
    early_stop: EarlyStop | None


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _early_stop(raw: dict[str, Any], provider_auto: bool, default_auto: bool) -> tuple[EarlyStop | None, list[Problem]]:
    """The `epochs: auto` settings in a raw tuner config (None when epochs are fixed), and what is wrong with them.
    `default_auto`: a config that names no epochs gets `epochs: auto`."""
    epochs = raw.get("epochs", "auto" if default_auto else None)
    auto = epochs == "auto" and not provider_auto
    problems: list[Problem] = []
    if not auto:
        for key in AUTO_KEYS:
            if key in raw:
                problems.append(
                    (
                        ("tuner", "config", key),
                        f"{key} only applies with epochs: auto (stop when dev stops improving). "
                        f"Fix: set epochs: auto, or remove {key}.",
                    )
                )
        return None, problems
    stop = EarlyStop()
    for key, low, high in (("patience", 1, 10), ("max_epochs", 1, 50)):
        value = raw.get(key, getattr(stop, key))
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems.append(
                (("tuner", "config", key), f"{key} must be a whole number from {low} to {high}; got {value!r}.")
            )
        else:
            setattr(stop, key, value)
    return stop, problems


def parse_search(
    raw: dict[str, Any], *, has_dev: bool, provider_auto: bool = False, has_epochs: bool = True
) -> tuple[Search, list[Problem]]:
    """Expand a raw tuner config into the candidates to train. `provider_auto`: the tuner itself accepts
    `epochs: auto` (a provider that chooses the epochs), so it is passed through, not searched. `has_epochs`: the
    tuner trains for a number of epochs; then, with a dev split, epochs default to auto."""
    problems: list[Problem] = []
    early_stop, auto_problems = _early_stop(raw, provider_auto, has_epochs and has_dev and not provider_auto)
    problems += auto_problems
    grid: dict[str, list[Any]] = {}
    for key in SEARCHABLE:
        value = raw.get(key)
        if not isinstance(value, list):
            continue
        if not value:
            problems.append(
                (
                    ("tuner", "config", key),
                    f"an empty list of {key} candidates. Fix: give one value, or several to choose from on dev "
                    f"(e.g. {key}: {_example(key)}).",
                )
            )
            continue
        if key == "epochs" and "auto" in value:
            problems.append(
                (
                    ("tuner", "config", key),
                    "epochs: auto cannot be one candidate of a list. Fix: write epochs: auto on its own "
                    "(it already tries every epoch up to max_epochs), or list numbers only.",
                )
            )
            continue
        grid[key] = _unique(value)
    size = math.prod(len(v) for v in grid.values()) if grid else 1
    if size > MAX_CANDIDATES:
        shape = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
        problems.append(
            (
                ("tuner", "config"),
                f"a search over {size} trainings ({shape}); at most {MAX_CANDIDATES} are allowed, since each "
                "candidate is a whole training. Fix: shorten the lists (e.g. search learning_rate first, "
                "then rank at the best one), or put a wider search in its own variant suite.",
            )
        )
    if not has_dev and ((grid and size > 1) or early_stop is not None):
        what = "epochs: auto stops when the dev score stops improving" if early_stop else "a search chooses on dev"
        key = "epochs" if early_stop else next(iter(grid))
        problems.append(
            (
                ("tuner", "config", key),
                f"{what}, and this suite has no dev split (test is never used to choose). "
                "Fix: add a data.dev file (or a split.dev fraction with data.source), or give a single value.",
            )
        )
    base = {k: v for k, v in raw.items() if k not in AUTO_KEYS}
    if early_stop is not None:
        base["epochs"] = early_stop.max_epochs
    keys = list(grid)
    candidates = [
        Candidate({**base, **dict(zip(keys, combo, strict=True))}, dict(zip(keys, combo, strict=True)))
        for combo in itertools.product(*(grid[k] for k in keys))
    ] or [Candidate(base)]
    return Search(candidates if size <= MAX_CANDIDATES else candidates[:1], grid, early_stop), problems


def _example(key: str) -> str:
    return {"learning_rate": "[1.0e-4, 3.0e-4]", "rank": "[8, 16]", "epochs": "[2, 4]"}[key]


def locate(loc: tuple[str | int, ...], candidate: Candidate, grid: dict[str, list[Any]]) -> tuple[str | int, ...]:
    """A candidate's config error located in the suite: a searched key's value gets its index in the list."""
    if loc and loc[0] in candidate.values and loc[0] in grid:
        return (loc[0], grid[str(loc[0])].index(candidate.values[str(loc[0])]), *loc[1:])
    return loc


def patience_exhausted(scores: list[float | None], patience: int) -> bool:
    """True when the last `patience` scored epochs brought no improvement over the best before them."""
    scored = [s for s in scores if s is not None]
    if len(scored) <= patience:
        return False
    best_before = max(scored[:-patience])
    return max(scored[-patience:]) <= best_before


def grid_edges(
    grid: dict[str, list[Any]], chosen: Candidate, best_by_candidate: list[tuple[Candidate, float]]
) -> list[str]:
    """The searched numeric keys whose chosen value is the largest or smallest tried and beat its neighbour inside
    the grid on dev (the trend points outside the grid, so a wider search might do better)."""
    found = []
    for key, values in grid.items():
        numbers = sorted(v for v in values if isinstance(v, int | float) and not isinstance(v, bool))
        value = chosen.values.get(key)
        if len(numbers) < 2 or value not in (numbers[0], numbers[-1]):
            continue
        inner = numbers[1] if value == numbers[0] else numbers[-2]
        others = {k: v for k, v in chosen.values.items() if k != key}

        def best_at(v: Any, others: dict[str, Any] = others, key: str = key) -> float | None:
            return next((s for c, s in best_by_candidate if c.values == {**others, key: v}), None)

        here, there = best_at(value), best_at(inner)
        if here is not None and there is not None and here > there:
            side = "smallest" if value == numbers[0] else "largest"
            found.append(f"{key}={value} is the {side} tried and beat {key}={inner} on dev ({here:.3f} vs {there:.3f})")
    return found
