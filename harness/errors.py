"""One exception hierarchy for the whole product; the CLI turns these into messages and exit codes."""

from __future__ import annotations

import base64
import difflib
import os
import re
from collections.abc import Iterable
from urllib.parse import quote


class HarnessError(Exception):
    """Base of every error the harness raises on purpose. The message is meant for the user, and never shows a
    secret: a provider's error quoted in it may echo the key it was sent (some proxies do)."""

    exit_code = 2

    def __str__(self) -> str:
        return redact(super().__str__())


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


class ProviderError(HarnessError):
    """A provider's API failed a call the run cannot go on without (uploading training data, building an index)."""


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
    return remember_secret(key)


# ---- secrets ----------------------------------------------------------------------------------------------
# Keys live only in the environment, but a provider (or a proxy in front of it) may quote them back in an error
# body: every error text the harness records, prints or writes goes through redact() first.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_remembered: set[str] = set()
# Secrets the harness was not told about, recognised by their shape: bearer tokens, OpenAI-style keys, and the
# value of an api-key / authorization header quoted in a dict or a header dump.
_PATTERNS = (
    (re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1***"),
    (re.compile(r"\b(sk-)[A-Za-z0-9_-]{12,}"), r"\1***"),
    (
        re.compile(
            r"(?i)((?:api-key|x-api-key|authorization)['\"]?\s*[:=]\s*['\"]?)(?!bearer\s|basic\s)"
            r"[^'\"\s,}]{8,}"
        ),
        r"\1***",
    ),
)


def remember_secret(value: str) -> str:
    """Mark `value` (a key or token read from the environment) as never to be shown; returns it."""
    if len(value) >= 8:
        _remembered.add(value)
    return value


def _secrets() -> set[str]:
    """The keys read so far, and the values of environment variables named like secrets (OPENAI_API_KEY,
    AZURE_MGMT_TOKEN, ...) whatever reads them."""
    found = set(_remembered)
    for name, value in os.environ.items():
        if (
            _SECRET_NAME.search(name)
            and len(value) >= 12
            and not value.startswith(("/", "~", "."))
            and " " not in value
        ):
            found.add(value)
    return found


def mask(secret: str) -> str:
    """How a secret is shown: its last 4 characters at most (as providers mask keys), so a user can tell which."""
    return f"***{secret[-4:]}" if len(secret) >= 20 else "***"


def redact(text: str, *, shapes: bool = True) -> str:
    """`text` with every secret masked: the known ones as they are, URL-encoded or base64-encoded, and (`shapes`)
    anything shaped like a bearer token, an `sk-` key or an api-key header's value."""
    if not text:
        return text
    for secret in sorted(_secrets(), key=len, reverse=True):
        for form in (secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode().rstrip("=")):
            if form in text:
                text = text.replace(form, mask(secret))
    if shapes:
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    return text


def provider_error(exc: BaseException, *, who: str, key_env: str | None = None) -> HarnessError:
    """A provider's failed API call as an error for the user, its message kept with any key masked: a refused key
    (401/403) is a configuration error naming the variable to check; anything else a ProviderError."""
    message = f"{type(exc).__name__}: {redact(str(exc))[:500]}"
    if getattr(exc, "status_code", None) in (401, 403) and key_env:
        return ConfigError(
            f"{who}: the provider refused the key in {key_env} ({message}). Fix: put a valid key for "
            f"this endpoint in {key_env}, or set api_key_env to the variable that holds one."
        )
    return ProviderError(
        f"{who}: {message}. Fix: check the provider's status page and rerun the same command; finished work is kept."
    )


class BudgetReached(Exception):
    """Paid calls that could take spend past the suite's budget_usd: they are not made (not a user error)."""
