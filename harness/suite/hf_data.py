"""Rows of a Hugging Face dataset for `data: {hf: ...}`: a hub id (obeys HF_HUB_OFFLINE, pinned by `revision`),
local data files `datasets.load_dataset` reads, or a folder written by `save_to_disk`.

The dataset's splits map onto train/dev/test (its train, validation or dev, and test unless `hf.splits` says
otherwise); one named `hf.split`, or a dataset with fewer splits, is cut by the suite seed (data.split fractions,
default 0.7/0.1/0.2 for what is missing). `hf.columns` makes fields from nested columns ('answers.text[0]')."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import DataError, closest
from harness.suite.schema import DataSpec, HFDataSpec

DEFAULT_CUT = {"train": 0.7, "dev": 0.1, "test": 0.2}
DEV_NAMES = ("validation", "dev", "valid", "val")
SAVED_MARKERS = ("dataset_dict.json", "state.json", "dataset_info.json")
Where = Callable[[tuple], str]  # a suite location -> 'suite.yaml:LINE: data.hf.x'


def _offline() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _local(spec: HFDataSpec, base: Path) -> Path | None:
    path = Path(spec.path)
    path = path if path.is_absolute() else base / path
    return path if path.exists() else None


def open_dataset(spec: HFDataSpec, base: Path, where: Where) -> tuple[dict[str, Any], str]:
    """{split name: datasets.Dataset} and a fingerprint of the data read."""
    from harness.errors import require
    from harness.home import tree_fingerprint

    datasets = require("datasets", extra="hf", purpose="data.hf")
    local = _local(spec, base)
    try:
        if local is not None and local.is_dir() and any((local / m).is_file() for m in SAVED_MARKERS):
            for key in ("name", "revision"):
                if getattr(spec, key) is not None:
                    raise DataError(
                        f"{where(('data', 'hf', key))}: a `save_to_disk` folder is read as it was saved; `{key}` "
                        f"applies to hub datasets and loading scripts. Fix: remove `{key}` (the folder's files are "
                        "hashed into the run's fingerprint)."
                    )
            loaded = datasets.load_from_disk(str(local))
            fingerprint = tree_fingerprint(local)
        else:
            loaded = datasets.load_dataset(
                str(local) if local is not None else spec.path, spec.name, revision=spec.revision
            )
            fingerprint = ""
    except DataError:
        raise
    except Exception as exc:
        if local is None and _offline():
            raise DataError(
                f"{where(('data', 'hf', 'path'))}: HF_HUB_OFFLINE=1 is set and the dataset '{spec.path}' is not in "
                f"the local Hugging Face cache with this name and revision (nor a folder next to the suite: "
                f"{base / spec.path}), so it cannot be read. Fix: unset HF_HUB_OFFLINE (and HF_DATASETS_OFFLINE) "
                "on a machine that reaches the hub, or save the dataset there with `save_to_disk` and name that "
                "folder in data.hf.path."
            ) from None
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{where(('data', 'hf', 'path'))}: cannot load the dataset '{spec.path}'"
            f"{f' ({spec.name})' if spec.name else ''}: {message}. Fix: "
            + (
                f"the files in {local} may be cut short or damaged: write the dataset there again (save_to_disk)."
                if local is not None
                else "check the path, `name` and `revision`."
            )
        ) from None
    splits = dict(loaded) if isinstance(loaded, dict) or hasattr(loaded, "keys") else {"all": loaded}
    if not fingerprint:
        fingerprint = ",".join(f"{k}={getattr(v, '_fingerprint', '')}" for k, v in sorted(splits.items()))
    return splits, fingerprint


_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def pick(row: dict[str, Any], expression: str) -> Any:
    """The value at 'a.b[0]' in a row; KeyError naming the part that is missing."""
    value: Any = row
    for name, index in _PART.findall(expression):
        if name:
            if not isinstance(value, dict) or name not in value:
                raise KeyError(name)
            value = value[name]
        else:
            if not isinstance(value, list | tuple) or not -len(value) <= int(index) < len(value):
                raise KeyError(f"[{index}]")
            value = value[int(index)]
    return value


def _rows(dataset: Any, spec: HFDataSpec, seed: int, label: str, where: Where) -> list[dict[str, Any]]:
    indices = list(range(len(dataset)))
    if spec.max_rows is not None and len(indices) > spec.max_rows:
        indices = sorted(random.Random(seed).sample(indices, spec.max_rows))
        dataset = dataset.select(indices)
    columns = list(dataset.column_names)
    for field, expression in spec.columns.items():
        parts = _PART.findall(expression)
        head = parts[0][0] if parts else expression
        if head not in columns:
            raise DataError(
                f"{where(('data', 'hf', 'columns', field))}: names column '{head}', which {label} lacks."
                f"{closest(head, columns)} Its columns: {', '.join(columns)}. Fix: name one of them."
            )
    names = {  # class-label columns (ints on disk) as their names, as the task's labels spell them
        col: feature for col, feature in dataset.features.items() if type(feature).__name__ == "ClassLabel"
    }
    rows = []
    for number, row in zip(indices, dataset.to_list(), strict=True):
        for col, feature in names.items():
            value = row.get(col)
            row[col] = feature.int2str(value) if isinstance(value, int) and value >= 0 else None  # -1: unlabelled
        for field, expression in spec.columns.items():
            try:
                row[field] = pick(row, expression)
            except KeyError as exc:
                raise DataError(
                    f"{where(('data', 'hf', 'columns', field))}: '{expression}' has no {exc.args[0]} in row "
                    f"{number + 1} of {label}. Fix: point the mapping at a value every row has."
                ) from None
        row["__line__"] = number + 1
        rows.append(row)
    return rows


def hf_splits(
    spec: DataSpec, *, base: Path, seed: int, stratify: str | None, where: Where, split_rows: Callable
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Path], str]:
    """(rows per split, a label per split for messages, the data's fingerprint)."""
    hf = spec.hf
    assert hf is not None
    available, fingerprint = open_dataset(hf, base, where)
    name = hf.path + (f"/{hf.name}" if hf.name else "")
    if hf.split is not None:
        if hf.split not in available:
            raise DataError(
                f"{where(('data', 'hf', 'split'))}: the dataset has no split '{hf.split}'.{closest(hf.split, available)} "
                f"Its splits: {', '.join(available)}. Fix: name one of them."
            )
        chosen = {"all": hf.split}
    elif hf.splits is not None:
        for ours, theirs in hf.splits.items():
            if theirs not in available:
                raise DataError(
                    f"{where(('data', 'hf', 'splits', ours))}: the dataset has no split '{theirs}'."
                    f"{closest(theirs, available)} Its splits: {', '.join(available)}. Fix: name one of them."
                )
        chosen = {str(k): v for k, v in hf.splits.items()}
    elif list(available) == ["all"]:
        chosen = {"all": "all"}
    else:
        dev = next((n for n in DEV_NAMES if n in available), None)
        chosen = {k: v for k, v in (("train", "train"), ("dev", dev), ("test", "test")) if v in available}
        if not chosen:
            raise DataError(
                f"{where(('data', 'hf'))}: the dataset's splits ({', '.join(available)}) are none of train, "
                "validation, test. Fix: map them with `splits: {train: ..., test: ...}`, or cut one with `split:`."
            )
    labels = {ours: Path(f"{name}[{theirs}]") for ours, theirs in chosen.items()}
    rows = {ours: _rows(available[theirs], hf, seed, str(labels[ours]), where) for ours, theirs in chosen.items()}
    source: list[dict[str, Any]] | None = None
    if "all" in rows:
        source, label = rows.pop("all"), labels.pop("all")
    elif "train" in rows and not ("dev" in rows and "test" in rows):
        source, label = rows.pop("train"), labels["train"]
    if source is not None:  # the missing splits are cut from it by the suite seed
        given = spec.split.model_dump() if spec.split else DEFAULT_CUT
        fractions = {s: (given[s] if s not in rows else 0.0) for s in ("train", "dev", "test")}
        cut = split_rows(source, fractions, seed=seed, stratify=stratify)
        for split in ("train", "dev", "test"):
            if split not in rows:
                rows[split], labels[split] = cut[split], label
    if "test" not in rows:
        raise DataError(
            f"{where(('data', 'hf'))}: nothing to test on: the dataset has no test split and no train split to cut "
            f"one from (splits read: {', '.join(chosen.values())}). Fix: map one with `splits: {{test: ...}}`, or cut "
            "one split into all three with `split:`."
        )
    for split in ("train", "dev"):  # neither to cut from: the strategies that need them say so
        rows.setdefault(split, [])
        labels.setdefault(split, Path(name))
    return rows, labels, fingerprint
