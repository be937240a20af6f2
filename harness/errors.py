"""One exception hierarchy for the whole product; the CLI turns these into messages and exit codes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Base of every error the harness raises on purpose. The message is meant for the user."""

    exit_code = 2


class ConfigError(HarnessError):
    """The suite file or a command-line option is wrong."""


class DataError(HarnessError):
    """A data file is missing, unreadable or inconsistent."""


class MissingExtraError(HarnessError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed.\n"
            f"Fix: pip install 'ft-harness[{extra}]'"
        )


class ModelUnavailableError(HarnessError):
    """A model could not be found or fetched."""


class RunFolderError(HarnessError):
    """The run folder belongs to something else or cannot be read."""


def closest(word: str, choices: Iterable[str]) -> str:
    """A ' Did you mean X?' hint, or an empty string when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


def require(module: str, *, extra: str, purpose: str):
    """Import an optional module or raise an error naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra, purpose) from exc


def api_key(variable: str, *, who: str, setting: str) -> str:
    """The API key held by environment variable `variable` (keys live only there, never in a suite or a result)."""
    import os

    key = os.environ.get(variable)
    if not key:
        raise ConfigError(
            f"{who}: no API key in the environment variable {variable}. "
            f"Fix: export {variable}=..., or set {setting} to the variable that holds it."
        )
    return key


class BudgetReached(Exception):
    """Paid calls that could take spend past the suite's budget_usd: they are not made (not a user error)."""
