"""The shipped price sheet (dates, sources, retirements), its staleness, and `harness prices`."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.costs.prices import (
    STALE_AFTER_DAYS,
    price_sheet,
    resolve_price,
    retirement,
    sheet_age_days,
    staleness,
)
from harness.suite.schema import ModelPrice, Suite
from tests.conftest import base_suite, write_suite

RAW = yaml.safe_load(files("harness.costs").joinpath("prices.yaml").read_text(encoding="utf-8"))
SHEET_DATE = RAW["date"]


def harness(*args: str):
    return CliRunner().invoke(app, list(args))


def _suite(prices: dict) -> Suite:
    return Suite.model_validate({**base_suite(), "economics": {"prices": prices}})


# ---- (a) the shipped sheet -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RAW["models"]))
def test_every_model_entry_validates_with_real_dates_and_a_url_source(name: str) -> None:
    raw = RAW["models"][name]
    entry = ModelPrice.model_validate(raw)  # strict: an unknown or misspelt key fails here
    assert isinstance(raw["as_of"], date), f"{name}: as_of {raw['as_of']!r} is not a YAML date"
    assert entry.as_of == raw["as_of"]
    if "retires" in raw:
        assert isinstance(raw["retires"], date), f"{name}: retires {raw['retires']!r} is not a YAML date"
        assert entry.retires == raw["retires"] > entry.as_of
    assert re.fullmatch(r"https://[^\s/]+\.[a-z]{2,}/\S*", entry.source or ""), f"{name}: source {entry.source!r}"
    assert entry.as_of <= SHEET_DATE, f"{name}: as_of {entry.as_of} is after the sheet's date {SHEET_DATE}"
    if entry.same_as:
        assert entry.same_as in RAW["models"], f"{name}: same_as {entry.same_as} is not an entry"


@pytest.mark.parametrize("name", sorted(RAW["devices"]))
def test_every_device_rate_has_a_date_not_after_the_sheet(name: str) -> None:
    raw = RAW["devices"][name]
    assert isinstance(raw["as_of"], date) and raw["as_of"] <= SHEET_DATE
    assert raw["usd_per_hour"] > 0


def test_the_loaded_sheet_is_the_yaml_and_some_entries_carry_a_retirement_date() -> None:
    sheet = price_sheet()
    assert isinstance(sheet.date, date) and sheet.date == SHEET_DATE
    assert set(sheet.models) == set(RAW["models"])
    retiring = {name for name, raw in RAW["models"].items() if "retires" in raw}
    assert retiring, "no entry of the shipped sheet has a retires: date"
    for name in retiring:
        assert sheet.models[name].retires == RAW["models"][name]["retires"]


def test_a_resolved_price_records_the_retirement_date_it_inherits_through_same_as() -> None:
    target = RAW["models"]["azure/gpt-4o-mini"]["same_as"]
    record = resolve_price("azure/gpt-4o-mini", None).as_record()  # type: ignore[union-attr]
    assert record.retires == RAW["models"][target]["retires"]


# ---- (b) retirement() ------------------------------------------------------------------------------------------


def test_retirement_of_a_sheet_entry_is_its_own_date() -> None:
    assert retirement("gpt-4o-mini", None) == (RAW["models"]["gpt-4o-mini"]["retires"], "gpt-4o-mini")
    # a dated snapshot takes its entry's date, as its price does
    assert retirement("gpt-4o-mini-2024-07-18", None) == (RAW["models"]["gpt-4o-mini"]["retires"], "gpt-4o-mini")


def test_retirement_follows_same_as_from_an_azure_entry_to_the_entry_that_has_the_date() -> None:
    raw = RAW["models"]["azure/gpt-4.1-nano"]
    assert "retires" not in raw  # the azure entry has no date of its own ...
    assert retirement("azure/gpt-4.1-nano", None) == (RAW["models"][raw["same_as"]]["retires"], raw["same_as"])


def test_retirement_of_a_fine_tuned_name_is_its_base_models() -> None:
    base = RAW["models"]["gpt-4.1-mini"]["retires"]
    assert retirement("ft:gpt-4.1-mini:acme::abc123", None) == (base, "gpt-4.1-mini")
    assert retirement("ft:gpt-4.1-mini-2025-04-14:acme:tag:abc123", None) == (base, "gpt-4.1-mini")


def test_retirement_is_none_for_an_unknown_model_or_an_entry_without_a_date() -> None:
    assert retirement("no-such-model", None) is None
    assert retirement("ft:no-such-model:org::x", None) is None
    assert retirement("gpt-4o-mini-like", None) is None  # a merely similar name is not an entry
    assert "retires" not in RAW["models"]["text-embedding-3-small"]
    assert retirement("text-embedding-3-small", None) is None


def test_retirement_takes_the_suites_override_over_the_sheet() -> None:
    own = date(2030, 1, 1)
    suite = _suite({"gpt-4o-mini": {"retires": own.isoformat()}, "my-deployment": {"same_as": "azure/gpt-4o"}})
    assert retirement("gpt-4o-mini", suite) == (own, "economics.prices.gpt-4o-mini")
    assert retirement("ft:gpt-4o-mini:org::x", suite) == (own, "economics.prices.gpt-4o-mini")
    # an override without a date follows its same_as through the sheet
    assert retirement("my-deployment", suite) == (RAW["models"]["gpt-4o"]["retires"], "gpt-4o")
    assert retirement("my-deployment", None) is None  # without the suite the name is unknown


# ---- (c) staleness ---------------------------------------------------------------------------------------------


def test_staleness_is_none_up_to_120_days_and_a_sentence_naming_the_date_after() -> None:
    assert STALE_AFTER_DAYS == 120
    assert sheet_age_days(SHEET_DATE + timedelta(days=119)) == 119
    assert staleness(SHEET_DATE + timedelta(days=119)) is None
    assert staleness(SHEET_DATE + timedelta(days=120)) is None
    sentence = staleness(SHEET_DATE + timedelta(days=121))
    assert sentence is not None
    assert SHEET_DATE.isoformat() in sentence
    assert "121 days" in sentence
    assert "harness prices" in sentence and "economics.prices" in sentence


# ---- (d) harness prices ----------------------------------------------------------------------------------------


def _row(output: str, model: str) -> str:
    """The table row whose first cell is exactly `model`."""
    rows = [line for line in output.splitlines() if re.match(rf"^\W*{re.escape(model)}\s+│", line)]
    assert rows, f"no row for {model} in:\n{output}"
    return rows[0]


def test_prices_prints_the_sheet_and_each_models_prices() -> None:
    result = harness("prices")
    assert result.exit_code == 0, result.output
    assert f"price sheet {RAW['version']}, dated {SHEET_DATE.isoformat()}" in result.stdout
    mini = RAW["models"]["gpt-4o-mini"]
    cells = [c.strip() for c in _row(result.stdout, "gpt-4o-mini").split("│")]
    for key in ("input_per_1m_usd", "output_per_1m_usd", "training_per_1m_usd"):
        assert f"{mini[key]:g}" in cells, f"{key} {mini[key]} not in {cells}"
    assert "cuda" in result.stdout and f"{RAW['devices']['cuda']['usd_per_hour']:g}" in result.stdout


def test_prices_json_has_the_sheet_models_and_devices() -> None:
    result = harness("prices", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sheet"]["version"] == RAW["version"] and data["sheet"]["date"] == SHEET_DATE.isoformat()
    assert data["sheet"]["age_days"] == (date.today() - SHEET_DATE).days
    assert set(data["models"]) == set(RAW["models"])
    assert data["models"]["gpt-4o"]["input_per_1m_usd"] == RAW["models"]["gpt-4o"]["input_per_1m_usd"]
    assert data["models"]["gpt-4o"]["retires"] == RAW["models"]["gpt-4o"]["retires"].isoformat()
    assert data["models"]["azure/gpt-4o"]["retirement"] == {
        "date": RAW["models"]["gpt-4o"]["retires"].isoformat(),
        "entry": "gpt-4o",
    }
    assert set(data["devices"]) == set(RAW["devices"])
    assert data["overrides"] is None and data["backends"] is None


def _overriding_suite(tmp_path: Path) -> Path:
    suite = base_suite()
    suite["backends"][0]["model"] = "gpt-4o-mini"  # the fake backend, priced by tokens once the suite prices it
    suite["economics"] = {"prices": {"gpt-4o-mini": {"input_per_1m_usd": 0.123}}, "usd_per_hour": {"cuda": 9.5}}
    return write_suite(tmp_path / "suite", suite)


def test_prices_of_a_suite_show_its_overrides_and_the_price_each_backend_is_charged(tmp_path: Path) -> None:
    path = _overriding_suite(tmp_path)
    data = json.loads(harness("prices", str(path.parent), "--json").stdout)
    assert data["overrides"]["prices"]["gpt-4o-mini"]["input_per_1m_usd"] == 0.123
    assert data["overrides"]["usd_per_hour"] == {"cuda": 9.5}
    (backend,) = data["backends"]
    assert backend["backend"] == "fake" and backend["charged_by"] == "tokens"
    sheet = RAW["models"]["gpt-4o-mini"]
    # the override's input price, the sheet's output price underneath it
    assert backend["per_1m_usd"]["input"] == 0.123
    assert backend["per_1m_usd"]["output"] == sheet["output_per_1m_usd"]
    assert "suite economics.prices" in backend["origin"] and RAW["version"] in backend["origin"]
    assert backend["retires"] == sheet["retires"].isoformat()

    result = harness("prices", str(path))
    assert result.exit_code == 0, result.output
    assert "overrides in" in result.stdout and "economics.prices" in result.stdout
    assert "economics.usd_per_hour" in result.stdout
    assert "0.123" in _row(result.stdout, "fake")  # the backend's row shows the override's price
    assert "9.5" in result.stdout


def test_prices_of_a_missing_suite_exits_2_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "suite.yaml"
    result = harness("prices", str(missing))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert str(missing) in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_prices_of_an_invalid_suite_exits_2_like_validate(tmp_path: Path) -> None:
    suite = base_suite()
    suite["backends"][0]["kind"] = "no-such-kind"
    path = write_suite(tmp_path / "bad", suite)
    validated, priced = harness("validate", str(path)), harness("prices", str(path))
    assert validated.exit_code == priced.exit_code == 2
    assert priced.stderr == validated.stderr and str(path) in priced.stderr
