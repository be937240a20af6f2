"""harness: measure few-shot prompting, RAG and fine-tuning on one task and decide which pays off.

What a plugin (a backend, strategy, scorer or tuner of its own) imports is exported here; see README's
"Extending". Importing this package stays light: the names below load on first use, and heavy libraries (torch,
transformers, openai, langchain, ragas, streamlit) only where they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it (loaded on first access)
_API = {
    "HarnessError": "harness.errors",
    "ConfigError": "harness.errors",
    "DataError": "harness.errors",
    "require": "harness.errors",
    "StrictModel": "harness.suite.schema",
    "GenerationParams": "harness.suite.schema",
    "Case": "harness.suite.data",
    "Dataset": "harness.suite.data",
    "build_messages": "harness.suite.prompts",
    "prompt_parts": "harness.suite.prompts",
    "Backend": "harness.backends.base",
    "GenRequest": "harness.backends.base",
    "GenResult": "harness.backends.base",
    "Strategy": "harness.strategy",
    "StrategyContext": "harness.strategy",
    "StrategyRequest": "harness.strategy",
    "StrategyPlan": "harness.strategy",
    "Scorer": "harness.scoring.base",
    "Score": "harness.scoring.base",
    "Tuner": "harness.tuner",
    "TuneContext": "harness.tuner",
    "TuneResult": "harness.tuner",
    "TrainExample": "harness.tuner",
    "Checkpoint": "harness.tuner",
    "Given": "harness.records.setup",
    "SetupCost": "harness.records.setup",
    "TunerStats": "harness.records.setup",
    "Preflight": "harness.records.setup",
    "CaseMeta": "harness.records.cases",
    "RunRecord": "harness.records.run",
    "read_run": "harness.run.folder",
    "CompareOptions": "harness.run.compare",
    "compare": "harness.run.compare",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from harness.backends.base import Backend, GenRequest, GenResult
    from harness.errors import ConfigError, DataError, HarnessError, require
    from harness.records.cases import CaseMeta
    from harness.records.run import RunRecord
    from harness.records.setup import Given, Preflight, SetupCost, TunerStats
    from harness.run.compare import CompareOptions, compare
    from harness.run.folder import read_run
    from harness.scoring.base import Score, Scorer
    from harness.strategy import Strategy, StrategyContext, StrategyPlan, StrategyRequest
    from harness.suite.data import Case, Dataset
    from harness.suite.prompts import build_messages, prompt_parts
    from harness.suite.schema import GenerationParams, StrictModel
    from harness.tuner import Checkpoint, TrainExample, TuneContext, Tuner, TuneResult
