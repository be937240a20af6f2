"""Secrets scan: `harness compare` with distinctive fake keys in the environment, through every part that holds a
key (the `openai` backend on OpenAI and Azure routes, the OpenAI embedder of RAG, the openai and azure tuners with
the Azure management token), including error paths where the server quotes the key back (a 401 from a careless
proxy, 400/500 bodies that echo the request headers). Then every file the runs wrote, HARNESS_HOME (cache, index,
tuning folders), the report's exports and the captured output are searched for each key: none may hold it.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from tests.conftest import LABELS, harness_cli, make_rows, report_check, write_jsonl
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.slow


def fake_key(prefix: str, n: int = 40, alphabet: str = string.ascii_letters + string.digits) -> str:
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


KEYS = {  # environment variable -> its (random, distinctive) value
    "SCAN_OPENAI_KEY": fake_key("sk-test-"),
    "SCAN_AZURE_KEY": fake_key("", 32, string.hexdigits[:16]),  # Azure OpenAI keys are 32 hex digits
    "SCAN_AZURE_MGMT_TOKEN": fake_key("eyJ0eXAiOiJKV1Qi.", 60, string.ascii_letters + string.digits + "-_"),
    "SCAN_EMBED_KEY": fake_key("sk-test-emb-"),
    "SCAN_REFUSED_KEY": fake_key("sk-test-refused-"),  # the server answers 401 quoting it
    "SCAN_REFUSED_MGMT_TOKEN": fake_key("eyJ0eXAiOiJKV1Qi.", 60, string.ascii_letters + string.digits + "-_"),  # too
}
REFUSED = {KEYS["SCAN_REFUSED_KEY"], KEYS["SCAN_REFUSED_MGMT_TOKEN"]}
CORPUS = [
    {"id": label, "title": label.title(), "text": f"Requests that mention {label} are labelled {label}."}
    for label in LABELS
]


def answers(body):
    """Base models: the label the request is about; the test case 'number 0' is refused with a 400 that (with
    echo_headers) quotes the request's headers."""
    text = body["messages"][-1]["content"]
    if "test request number 0 " in text:
        raise LookupError("this input is refused")
    return next((label for label in LABELS if f"about {label}" in text), "alpha")


def suite_file(folder: Path, url: str) -> Path:
    write_jsonl(folder / "data/train.jsonl", make_rows("train", 12))
    write_jsonl(folder / "data/dev.jsonl", make_rows("dev", 6))
    write_jsonl(folder / "data/test.jsonl", make_rows("test", 9))
    write_jsonl(folder / "corpus.jsonl", CORPUS)
    root = url.removesuffix("/v1")
    common = {"concurrency": 4, "max_retries": 1, "backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 10}
    tuner = {"epochs": 3, "poll_s": 0.01, "poll_max_s": 0.02}

    def embedder(env: str, model: str) -> dict:
        return {
            "kind": "openai",
            "model": model,
            "base_url": url,
            "api_key_env": env,
            "batch_size": 2,
            "usd_per_1m_tokens": 0.02,
        }

    def azure_tuner(token_env: str) -> dict:
        return {
            "kind": "azure",
            "config": {
                **tuner,
                "subscription_id": "sub-1",
                "resource_group": "rg-1",
                "account": "acct-1",
                "management_url": root,
                "token_env": token_env,
            },
        }

    suite = {
        "name": "secrets",
        "seed": 3,
        "task": {
            "instructions": "Pick one of: {labels}.",
            "input_field": "text",
            "target_field": "label",
            "labels": LABELS,
        },
        "data": {"train": "data/train.jsonl", "dev": "data/dev.jsonl", "test": "data/test.jsonl"},
        "backends": [
            {
                "name": "api",
                "kind": "openai",
                "model": "gpt-4o-mini",
                "config": {"base_url": url, "api_key_env": "SCAN_OPENAI_KEY", **common},
            },
            {
                "name": "azure",
                "kind": "openai",
                "model": "gpt-4o-mini",
                "config": {
                    "base_url": root,
                    "azure_api_version": "2024-10-21",
                    "api_key_env": "SCAN_AZURE_KEY",
                    **common,
                },
            },
            {
                "name": "refused",
                "kind": "openai",
                "model": "gpt-4o",  # not answered from the others' cache
                "config": {"base_url": url, "api_key_env": "SCAN_REFUSED_KEY", **common},
            },
        ],
        "strategies": [
            {"name": "zero", "kind": "zero_shot", "backend": "api"},
            {"name": "zero_azure", "kind": "zero_shot", "backend": "azure"},
            {
                "name": "rag",
                "kind": "rag",
                "backend": "api",
                "config": {
                    "corpus": "corpus.jsonl",
                    "embedder": embedder("SCAN_EMBED_KEY", "text-embedding-3-small"),
                    "top_k": 1,
                },
            },
            {
                "name": "ft",
                "kind": "finetune",
                "backend": "api",
                "config": {"tuner": {"kind": "openai", "config": {**tuner, "suffix": "s"}}},
            },
            {
                "name": "ft_azure",
                "kind": "finetune",
                "backend": "azure",
                "config": {"tuner": azure_tuner("SCAN_AZURE_MGMT_TOKEN")},
            },
            {"name": "zero_refused", "kind": "zero_shot", "backend": "refused"},
            # each of these stops its run: a refused key while training, while deploying, and while indexing
            {
                "name": "ft_refused",
                "kind": "finetune",
                "backend": "refused",
                "config": {"tuner": {"kind": "openai", "config": tuner}},
            },
            {
                "name": "ft_azure_refused",
                "kind": "finetune",
                "backend": "azure",
                "config": {"tuner": azure_tuner("SCAN_REFUSED_MGMT_TOKEN")},
            },
            {
                "name": "rag_refused",
                "kind": "rag",
                "backend": "api",  # another model: its index is not cached
                "config": {
                    "corpus": "corpus.jsonl",
                    "embedder": embedder("SCAN_REFUSED_KEY", "text-embedding-3-large"),
                    "top_k": 1,
                },
            },
        ],
        "scorers": [{"kind": "label_accuracy"}],
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def forms(key: str) -> dict[str, bytes]:
    """What a leaked key could look like in a file: as is, URL-encoded, base64 (alone and as HTTP Basic auth),
    JSON-escaped, and its last 8 characters alone (a masked key may show its last 4, as OpenAI's do)."""
    found = {
        "raw": key.encode(),
        "url-encoded": quote(key, safe="").encode(),
        "base64": base64.b64encode(key.encode()).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(key.encode()).rstrip(b"="),
        "basic-auth": base64.b64encode(f":{key}".encode()).rstrip(b"="),
        "json": json.dumps(key)[1:-1].encode(),
        "last 8": key[-8:].encode(),
    }
    return found


def scan(blobs: dict[str, bytes]) -> list[str]:
    hits = []
    for name, data in blobs.items():
        for variable, key in KEYS.items():
            for form, needle in forms(key).items():
                if needle in data:
                    at = data.index(needle)
                    hits.append(f"{name}: {variable} ({form}) ...{data[max(at - 80, 0) : at + 80]!r}...")
    return hits


def test_no_key_reaches_a_file_a_report_or_the_output(tmp_path):
    home = tmp_path / "home"
    script = Script(chat=answers, faults={"500": 0.15}, echo_headers=True, seed=11, reject_keys=REFUSED)
    script.deployments["gpt-4o-mini"] = {"model": "gpt-4o-mini", "state": "Succeeded", "polls": 0}  # Azure's base
    outputs: dict[str, str] = {}
    with FakeOpenAI(script) as url:
        path = suite_file(tmp_path / "suite", url)
        main = harness_cli(
            "compare",
            str(path),
            "--out",
            str(tmp_path / "run"),
            "-v",
            "--strategies",
            "zero,zero_azure,rag,ft,ft_azure",
            home=home,
            env=KEYS,
        )
        outputs["compare"] = main.stdout + main.stderr
        assert main.returncode == 0, main.stderr[-3000:]
        failing = {
            name: harness_cli(
                "compare",
                str(path),
                "--out",
                str(tmp_path / f"run-{name}"),
                "-v",
                "--strategies",
                name,
                home=home,
                env=KEYS,
            )
            for name in ("zero_refused", "ft_refused", "ft_azure_refused", "rag_refused")
        }
        for name, proc in failing.items():
            outputs[f"compare {name}"] = proc.stdout + proc.stderr
        exported = harness_cli(
            "report",
            str(tmp_path / "run"),
            "--html",
            str(tmp_path / "report.html"),
            "--md",
            str(tmp_path / "report.md"),
            home=home,
            env=KEYS,
        )
        outputs["report"] = exported.stdout + exported.stderr
        assert exported.returncode == 0, exported.stderr[-3000:]

    # The keys were used: each reached the server, and the error paths that quote them back happened.
    sent = {r.get("auth") for r in script.requests} | {r.get("api_key") for r in script.requests}
    for variable in (
        "SCAN_OPENAI_KEY",
        "SCAN_EMBED_KEY",
        "SCAN_REFUSED_KEY",
        "SCAN_AZURE_MGMT_TOKEN",
        "SCAN_REFUSED_MGMT_TOKEN",
    ):
        assert f"Bearer {KEYS[variable]}" in sent, variable
    assert KEYS["SCAN_AZURE_KEY"] in sent
    assert script.injected["401"] > 0 and script.injected["500"] > 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()]
    # a refused key stops its run at the first answer (exit 2, below), with nothing recorded as an answer
    refused_run = tmp_path / "run-zero_refused"
    refused_rows = (
        (refused_run / "cases.jsonl").read_text().splitlines() if (refused_run / "cases.jsonl").exists() else []
    )
    assert refused_rows == [] and json.loads((refused_run / "run.json").read_text())["status"] == "failed"
    echoed = [r for r in rows if r["case_id"] == "test-0" and r["strategy"] in ("zero", "zero_azure")]
    assert echoed and all(r["error"] and "400" in r["error"] for r in echoed)
    for proc in failing.values():  # a refused key stops the run with a message, not a traceback
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "401" in proc.stderr, proc.stderr[-3000:]
    assert "SCAN_REFUSED_KEY" in failing["zero_refused"].stderr  # names the variable to fix

    blobs = {f"output of {name}": text.encode() for name, text in outputs.items()}
    folders = [tmp_path / "run", *(tmp_path / f"run-{name}" for name in failing), home]
    files = [f for folder in folders for f in folder.rglob("*") if f.is_file()]
    files += [tmp_path / "report.html", tmp_path / "report.md"]
    assert any(f.name == "responses.sqlite" for f in files) and any(f.name == "events.jsonl" for f in files)
    for file in files:
        blobs[str(file.relative_to(tmp_path))] = file.read_bytes()
    hits = scan(blobs)
    report_check("secrets scan", files_scanned=len(files), outputs_scanned=len(outputs), keys=len(KEYS), hits=len(hits))
    assert not hits, "\n".join(hits)
