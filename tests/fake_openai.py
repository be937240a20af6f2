"""A local ASGI server (starlette + uvicorn) that speaks the parts of the OpenAI API the tests need, so the real
`openai` SDK is exercised without a network: chat completions (streamed as server-sent events or not, with usage),
embeddings. Scripted per test; it injects faults at a set rate (429 with Retry-After, 500, slow answers, dropped
connections, malformed bodies) and counts every request it receives (with the fault it got) and every answer it
completed, so tests can prove no case was paid twice. Like a careless proxy, it can also echo the request's headers
(keys included) in its error bodies, and refuse chosen keys with a 401 that quotes them, so tests can prove a key
the server sends back never reaches a result.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DIM = 64
FAULTS = ("429", "500", "slow", "drop", "malformed")


def bag_of_words(text: str) -> list[float]:
    """A deterministic embedding: hashed word counts, so lexical overlap decides similarity."""
    vec = [0.0] * DIM
    for word in re.findall(r"\w+", text.lower()):
        vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
    return vec


def body_key(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Script:
    # (request body) -> reply text for chat completions; raise LookupError for "no rule" (answered with 400)
    chat: Callable[[dict[str, Any]], str] = lambda body: ""
    fail_first: int = 0  # answer the first N requests with HTTP 500 (clients retry them)
    latency_s: float = 0.0  # added to every answer
    embed_latency_s: float = 0.0  # added to every embeddings request
    faults: dict[str, float] = field(default_factory=dict)  # fault -> probability per request (see FAULTS)
    retry_after_s: float = 0.2  # what a 429 asks the client to wait
    slow_s: float = 5.0  # how long a "slow" answer takes
    seed: int = 0
    # Keys refused with a 401 whose body quotes the key and every request header (any route, any auth scheme).
    reject_keys: set[str] = field(default_factory=set)
    echo_headers: bool = False  # 400 and injected 500 bodies quote the request's headers (Authorization included)
    refuse_body_delay_s: float = 0.0  # a 401's body comes up to this long after its headers (read while others fly)
    requests: list[dict[str, Any]] = field(default_factory=list)  # per request: path, auth, body (chat: fault)
    completed: Counter = field(default_factory=Counter)  # body key -> answers delivered in full (status 200)
    completed_at: list[tuple[str, float]] = field(default_factory=list)  # (body key, time.time()) per delivery
    injected: Counter = field(default_factory=Counter)  # fault -> times injected
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Fine-tuning: uploaded files, jobs; a job moves validating_files -> queued -> running -> succeeded (or
    # `job_outcome`) one step per `job_step_polls` retrievals.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_step_polls: int = 1
    job_outcome: str = "succeeded"
    job_epochs_default: int = 3
    # Azure: deployments (name -> {model, state, polls}); a deployment is ready after `deploy_polls` reads.
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    deploy_polls: int = 1
    deployment_log: list[tuple[str, str, float]] = field(default_factory=list)  # (action, name, time)

    def __post_init__(self):
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        self._rng = random.Random(self.seed)

    def fault(self) -> str | None:
        with self.lock:
            draw = self._rng.random()
        edge = 0.0
        for name in FAULTS:
            edge += self.faults.get(name, 0.0)
            if draw < edge:
                return name
        return None


def _chat_payload(script: Script, body: dict[str, Any], n: int) -> tuple[str, dict[str, Any]]:
    text = script.chat(body)
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(text.split()),
        "total_tokens": prompt_tokens + len(text.split()),
    }
    return text, usage


def make_app(script: Script):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": message, "type": kind, "code": None, "param": None}},
            status_code=status,
            headers=headers,
        )

    def headers_note(request: Request) -> str:
        return f" (request headers: {dict(request.headers)})" if script.echo_headers else ""

    async def fault_response(name: str, request: Request) -> Response | None:
        script.injected[name] += 1
        if name == "429":
            return error(
                429,
                "Rate limit reached (injected)",
                "requests",
                {
                    "retry-after-ms": str(int(script.retry_after_s * 1000)),
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{script.retry_after_s}s",
                },
            )
        if name == "500":
            return error(500, "injected server error" + headers_note(request), "server_error")
        if name == "malformed":
            return Response(b'{"id": "chatcmpl-x", "choices": [', media_type="application/json")
        if name == "slow":
            await asyncio.sleep(script.slow_s)
            return None  # then answers normally, too late for a client with a shorter timeout
        return None

    async def chat(request: Request) -> Response:
        arrived = time.monotonic()
        body = await request.json()
        deployment = request.path_params.get("deployment")
        if deployment is not None:  # Azure: the deployment names the model
            found = script.deployments.get(deployment)
            if found is None or found["state"] != "Succeeded":
                return error(
                    404, f"The API deployment for this resource does not exist: {deployment}", "DeploymentNotFound"
                )
            body = {**body, "model": found["model"]}
        # served_s: seconds from arrival to the answer delivered in full (None: never delivered)
        entry = {
            "path": request.url.path,
            "auth": request.headers.get("authorization"),
            "api_key": request.headers.get("api-key"),
            "body": body,
            "fault": None,
            "served_s": None,
        }
        with script.lock:
            script.requests.append(entry)
            n = len(script.requests)
            failing = n <= script.fail_first
        if failing:
            entry["fault"] = "fail_first"
            return error(500, "injected failure", "server_error")
        name = script.fault()
        entry["fault"] = name
        if name == "drop":
            script.injected[name] += 1
            raise ConnectionAbortedError("injected dropped connection")  # see DropMiddleware
        if name:
            response = await fault_response(name, request)
            if response is not None:
                return response
        if script.latency_s:
            await asyncio.sleep(script.latency_s)
        try:
            text, usage = _chat_payload(script, body, n)
        except LookupError as exc:
            return error(400, str(exc) + headers_note(request), "invalid_request_error")
        key = body_key(body)
        created = int(time.time())
        if body.get("stream"):

            async def events():
                words = text.split(" ") if text else []
                base = {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                }
                yield (
                    "data: "
                    + json.dumps(
                        {
                            **base,
                            "choices": [
                                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                            ],
                        }
                    )
                    + "\n\n"
                )
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    yield (
                        "data: "
                        + json.dumps(
                            {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                        )
                        + "\n\n"
                    )
                yield (
                    "data: "
                    + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    + "\n\n"
                )
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield "data: " + json.dumps({**base, "choices": [], "usage": usage}) + "\n\n"
                yield "data: [DONE]\n\n"
                with script.lock:
                    script.completed[key] += 1
                    script.completed_at.append((key, time.time()))
                    entry["served_s"] = time.monotonic() - arrived

            return StreamingResponse(events(), media_type="text/event-stream")
        with script.lock:
            script.completed[key] += 1
            script.completed_at.append((key, time.time()))
            entry["served_s"] = time.monotonic() - arrived
        return JSONResponse(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": created,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": usage,
            }
        )

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        with script.lock:
            script.requests.append(
                {"path": request.url.path, "auth": request.headers.get("authorization"), "body": body}
            )
            failing = len(script.requests) <= script.fail_first
        if failing:
            return error(500, "injected failure", "server_error")
        if script.embed_latency_s:
            await asyncio.sleep(script.embed_latency_s)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        n = sum(len(t.split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "model": body["model"],
                "usage": {"prompt_tokens": n, "total_tokens": n},
                "data": [
                    {"object": "embedding", "index": i, "embedding": bag_of_words(t)} for i, t in enumerate(texts)
                ],
            }
        )

    def record(request: Request, body: Any) -> None:
        with script.lock:
            script.requests.append(
                {
                    "path": request.url.path,
                    "method": request.method,
                    "auth": request.headers.get("authorization"),
                    "api_key": request.headers.get("api-key"),
                    "body": body,
                }
            )

    async def upload(request: Request) -> Response:
        form = await request.form()
        upload_file = form["file"]
        content = (await upload_file.read()).decode("utf-8")
        record(request, {"purpose": form.get("purpose"), "filename": upload_file.filename})
        file_id = f"file-{len(script.files) + 1}"
        script.files[file_id] = {"content": content, "purpose": form.get("purpose"), "filename": upload_file.filename}
        return JSONResponse(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": upload_file.filename,
                "purpose": form.get("purpose"),
                "status": "processed",
            }
        )

    STATUSES = ["validating_files", "queued", "running"]

    def job_view(job: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in job.items() if not key.startswith("_")}

    async def create_job(request: Request) -> Response:
        body = await request.json()
        record(request, body)
        if body.get("training_file") not in script.files:
            return error(400, f"file {body.get('training_file')} not found", "invalid_request_error")
        job_id = f"ftjob-{len(script.jobs) + 1}"
        method = body.get("method") or {}
        hyper = ((method.get("supervised") or {}).get("hyperparameters")) or body.get("hyperparameters") or {}
        epochs = hyper.get("n_epochs", "auto")
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "model": body["model"],
            "status": "validating_files",
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "fine_tuned_model": None,
            "finished_at": None,
            "error": None,
            "hyperparameters": {
                "n_epochs": epochs if epochs != "auto" else script.job_epochs_default,
                "batch_size": hyper.get("batch_size", 1),
                "learning_rate_multiplier": hyper.get("learning_rate_multiplier", 1.8),
            },
            "organization_id": "org-test",
            "result_files": [],
            "seed": body.get("seed", 0),
            "trained_tokens": None,
            "metadata": body.get("metadata"),
            "_polls": 0,
            "_suffix": body.get("suffix") or "",
            "_events": [{"level": "info", "message": "Validating training file"}],
        }
        script.jobs[job_id] = job
        return JSONResponse(job_view(job))

    def advance(job: dict[str, Any]) -> None:
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        job["_polls"] += 1
        if job["_polls"] % script.job_step_polls:
            return
        index = STATUSES.index(job["status"]) + 1
        if index < len(STATUSES):
            job["status"] = STATUSES[index]
            job["_events"].append({"level": "info", "message": f"Job {job['status']}"})
            if job["status"] == "running":
                for step in range(1, 4):
                    job["_events"].append(
                        {
                            "level": "info",
                            "message": f"Step {step}/3: training loss={1.5 / step:.2f}",
                            "data": {"step": step, "train_loss": 1.5 / step},
                            "type": "metrics",
                        }
                    )
            return
        if script.job_outcome == "failed":
            job.update(
                status="failed",
                finished_at=int(time.time()),
                error={"code": "invalid_training_file", "message": "injected job failure", "param": None},
            )
            job["_events"].append({"level": "error", "message": "Job failed"})
            return
        name = f"ft:{job['model']}:org-test:{job['_suffix']}:{job['id']}"
        examples = len(script.files[job["training_file"]]["content"].splitlines())
        job.update(
            status="succeeded",
            finished_at=int(time.time()),
            fine_tuned_model=name,
            trained_tokens=40 * examples * int(job["hyperparameters"]["n_epochs"]),
        )
        job["_events"].append({"level": "info", "message": "The job has successfully completed"})

    async def get_job(request: Request) -> Response:
        record(request, None)
        job = script.jobs.get(request.path_params["job_id"])
        if job is None:
            return error(404, "no such job", "invalid_request_error")
        advance(job)
        return JSONResponse(job_view(job))

    async def list_jobs(request: Request) -> Response:
        record(request, None)
        return JSONResponse({"object": "list", "data": [job_view(j) for j in script.jobs.values()], "has_more": False})

    async def job_events(request: Request) -> Response:
        record(request, None)
        job = script.jobs.get(request.path_params["job_id"])
        if job is None:
            return error(404, "no such job", "invalid_request_error")
        events = [
            {
                "id": f"ftevent-{job['id']}-{i}",
                "object": "fine_tuning.job.event",
                "created_at": job["created_at"] + i,
                "level": e["level"],
                "message": e["message"],
                "data": e.get("data"),
                "type": e.get("type", "message"),
            }
            for i, e in enumerate(job["_events"])
        ]
        return JSONResponse({"object": "list", "data": list(reversed(events)), "has_more": False})  # newest first

    async def job_checkpoints(request: Request) -> Response:
        record(request, None)
        job = script.jobs.get(request.path_params["job_id"])
        if job is None or job["status"] != "succeeded":
            return JSONResponse({"object": "list", "data": [], "has_more": False})
        epochs = int(job["hyperparameters"]["n_epochs"])
        data = []
        for epoch in range(max(1, epochs - 2), epochs + 1):  # the provider keeps the last three epochs
            step = epoch * 10
            model = job["fine_tuned_model"] if epoch == epochs else f"{job['fine_tuned_model']}:ckpt-step-{step}"
            data.append(
                {
                    "id": f"ftckpt-{job['id']}-{step}",
                    "object": "fine_tuning.job.checkpoint",
                    "created_at": job["created_at"] + step,
                    "fine_tuned_model_checkpoint": model,
                    "fine_tuning_job_id": job["id"],
                    "step_number": step,
                    "metrics": {"step": step, "train_loss": 1.0 / epoch, "valid_loss": 1.1 / epoch},
                }
            )
        return JSONResponse(
            {"object": "list", "data": list(reversed(data)), "has_more": False, "first_id": None, "last_id": None}
        )

    async def cancel_job(request: Request) -> Response:
        record(request, None)
        job = script.jobs.get(request.path_params["job_id"])
        if job is None:
            return error(404, "no such job", "invalid_request_error")
        if job["status"] not in ("succeeded", "failed"):
            job.update(status="cancelled", finished_at=int(time.time()))
            job["_events"].append({"level": "info", "message": "Job cancelled"})
        return JSONResponse(job_view(job))

    async def deployment(request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.json() if request.method == "PUT" else None
        record(request, body)
        if request.method == "PUT":
            model = body["properties"]["model"]["name"]
            script.deployments[name] = {"model": model, "state": "Creating", "polls": 0}
            script.deployment_log.append(("create", name, time.time()))
        elif request.method == "DELETE":
            if script.deployments.pop(name, None) is None:
                return error(404, f"deployment {name} not found", "NotFound")
            script.deployment_log.append(("delete", name, time.time()))
            return Response(status_code=200)
        found = script.deployments.get(name)
        if found is None:
            return error(404, f"deployment {name} not found", "NotFound")
        if request.method == "GET":
            found["polls"] += 1
            if found["polls"] >= script.deploy_polls:
                found["state"] = "Succeeded"
        return JSONResponse(
            {
                "id": request.url.path,
                "name": name,
                "type": "Microsoft.CognitiveServices/accounts/deployments",
                "sku": {"name": "standard", "capacity": 1},
                "properties": {
                    "model": {"format": "OpenAI", "name": found["model"], "version": "1"},
                    "provisioningState": found["state"],
                },
            }
        )

    async def not_found(request: Request) -> Response:
        return error(404, f"no route {request.url.path}", "invalid_request_error")

    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/files", upload, methods=["POST"]),
        Route("/v1/fine_tuning/jobs", create_job, methods=["POST"]),
        Route("/v1/fine_tuning/jobs", list_jobs, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}", get_job, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}/events", job_events, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}/checkpoints", job_checkpoints, methods=["GET"]),
        Route("/v1/fine_tuning/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
        # Azure OpenAI: the same data plane under /openai, chat by deployment, and the management plane
        Route("/openai/deployments/{deployment}/chat/completions", chat, methods=["POST"]),
        Route("/openai/files", upload, methods=["POST"]),
        Route("/openai/fine_tuning/jobs", create_job, methods=["POST"]),
        Route("/openai/fine_tuning/jobs/{job_id}", get_job, methods=["GET"]),
        Route("/openai/fine_tuning/jobs/{job_id}/events", job_events, methods=["GET"]),
        Route("/openai/fine_tuning/jobs/{job_id}/checkpoints", job_checkpoints, methods=["GET"]),
        Route("/openai/fine_tuning/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
        Route(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{account}"
            "/deployments/{name}",
            deployment,
            methods=["PUT", "GET", "DELETE"],
        ),
        Route("/{path:path}", not_found, methods=["GET", "POST", "DELETE"]),
    ]
    return DropMiddleware(RejectKeys(Starlette(routes=routes), script))


class RejectKeys:
    """Answers a request that carries one of `script.reject_keys` (as a bearer token or Azure's api-key header) with
    a 401 whose body quotes the key and all the headers, as some proxies and gateways do."""

    def __init__(self, app, script: Script):
        self.app = app
        self.script = script

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.script.reject_keys:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        sent = [headers.get("authorization", "").removeprefix("Bearer ").strip(), headers.get("api-key", "")]
        refused = next((key for key in sent if key and key in self.script.reject_keys), None)
        if refused is None:
            return await self.app(scope, receive, send)
        with self.script.lock:
            self.script.requests.append(
                {"path": scope["path"], "auth": headers.get("authorization"), "body": None, "fault": "401"}
            )
            self.script.injected["401"] += 1
        body = json.dumps(
            {
                "error": {
                    "message": f"Incorrect API key provided: {refused}. Request headers: {headers}",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                    "param": None,
                }
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", f"Bearer {refused}".encode()),
                ],
            }
        )
        if self.script.refuse_body_delay_s:
            await asyncio.sleep(random.uniform(0, self.script.refuse_body_delay_s))
        await send({"type": "http.response.body", "body": body.encode()})


class DropMiddleware:
    """Turns ConnectionAbortedError into a connection closed without an answer (what a dropped connection looks
    like to the client)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        except ConnectionAbortedError:
            # Announce a body that never comes, then end: the client sees the connection end mid-answer.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
                }
            )
            await send({"type": "http.response.body", "body": b"{", "more_body": False})


class FakeOpenAI:
    """`with FakeOpenAI(script) as base_url:` serves the script on 127.0.0.1 for the duration."""

    def __init__(self, script: Script):
        self.script = script

    def __enter__(self) -> str:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            make_app(self.script),
            log_level="critical",
            lifespan="off",
            access_log=False,
            limit_concurrency=2048,
            backlog=2048,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc):
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def model_chat(backend) -> Callable[[dict[str, Any]], str]:
    """A Script.chat that answers with a real local model (any harness backend, e.g. `hf` on a tiny model), so the
    server can stand in for a self-hosted OpenAI-compatible endpoint (vLLM, llama.cpp) in tests."""
    from harness.backends.base import GenRequest
    from harness.suite.schema import GenerationParams

    lock = threading.Lock()  # one generation at a time: the model is not shared across threads

    def chat(body: dict[str, Any]) -> str:
        params = GenerationParams(max_new_tokens=int(body.get("max_tokens") or 16), temperature=0.0)
        with lock:
            ((_, result),) = list(backend.generate([GenRequest(body["messages"], params)]))
        if result.error:
            raise LookupError(result.error)
        return result.text or ""

    return chat
