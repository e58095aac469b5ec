"""The Open Inference Protocol v2 REST server (the protocol of Triton, KServe and MLServer).

Endpoints (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/):
health, server and model metadata, model readiness, inference with dynamic batching, and the
repository extension's index and load. Every user-caused failure is a 4xx with ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gravityml.errors import GravityMLError, InferenceError, ModelNotFoundError
from gravityml.inference._batcher import BatcherClosed, Columns, DeadlineExceeded, QueueFull
from gravityml.inference._canary import STICKY_HEADER, Mirror, Rollout, follow_aliases, parse_canary
from gravityml.inference._observability import DISCONNECTED, Gate, Lifecycle, Metrics
from gravityml.inference._prepared import prepared_frame
from gravityml.inference._repository import Loaded, Repository, Served
from gravityml.inference._tensors import (
    FLOAT_MAX,
    PROBABILITIES,
    Decoded,
    binary_outputs,
    binary_wanted,
    check_declared,
    check_finite,
    decode_mlflow,
    decode_request,
    output_tensors,
    select_outputs,
)
from gravityml.inference._workers import MULTIPROC_ENV, WORKER_HEADER, listening_socket

log = logging.getLogger("gravityml.serve")
#: The binary tensor extension's header: the length of the JSON part of the body.
BINARY_HEADER = "inference-header-content-length"
#: Bodies up to this size are decoded on the event loop (a thread hop costs more than decoding them).
INLINE_DECODE_BYTES = 64 * 1024
#: A request's own deadline in milliseconds (at most the server's --timeout): past it, a request
#: still queued is not run and gets 504.
TIMEOUT_HEADER = "x-timeout-ms"
#: What the load endpoint takes over HTTP besides the refs named at start: registry references.
REGISTRY_REF = re.compile(r"(?:models:/)?[A-Za-z][A-Za-z0-9_.-]{0,127}(?:/[0-9]{1,9}|@[A-Za-z0-9_-]{1,64})?")
#: Flavors that compute in float32 (larger inputs overflow to infinity inside the model).
_FP32_FLAVORS = frozenset({"onnx", "torch", "autoencoder", "sb3"})


def _package_version() -> str:
    try:
        return metadata.version("gravityml")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0+unknown"


__version__ = _package_version()

_TENSOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                                                 "UINT32", "UINT64", "FP16", "FP32", "FP64", "BYTES"]},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object", "properties": {PROBABILITIES: {"type": "boolean"}}},
                    "inputs": {"type": "array", "items": _TENSOR_SCHEMA},
                    "outputs": {
                        "type": "array",
                        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
                    },
                },
            }
        }
    },
}
_ERROR: dict[str, Any] = {"content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    "400": {"description": "Bad request: the error names the tensor, shape, datatype or value", **_ERROR},
    "401": {"description": "Missing or wrong bearer token", **_ERROR},
    "404": {"description": "Unknown model or version", **_ERROR},
}
_LOAD_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"type": "object", "properties": {
        "parameters": {"type": "object", "properties": {"ref": {"type": "string"}}}}}}},
}


@dataclass(frozen=True)
class ServeConfig:
    """How the server behaves; every field has a CLI option of the same name."""

    max_batch_size: int = 64
    max_delay_ms: float = 0.0
    timeout_s: float = 30.0
    max_body_bytes: int = 16 * 1024 * 1024
    max_rows: int = 100_000
    token: str | None = None
    #: Threads one model call may use (OpenMP/BLAS and onnxruntime). Batches of online requests are
    #: small: one thread avoids threads spinning against the event loop on a small machine.
    model_threads: int = 1
    #: The bearer token of the repository endpoints (load); without one, loading over HTTP is off.
    admin_token: str | None = None
    #: Browser origins (scheme://host:port) allowed to call the server cross-origin.
    cors_origins: tuple[str, ...] = ()
    #: Seconds between SIGTERM and closing the port: readiness answers 503, every response closes its connection.
    drain_s: float = 5.0
    #: The OIP gRPC service's port (None: off), on ``grpc_host``.
    grpc_port: int | None = None
    grpc_host: str = "127.0.0.1"
    #: A PredictionLogger (``serve --log-predictions``): rows are queued, never waited for.
    prediction_log: Any = None
    #: Most requests queued or running per model version (0: unbounded); past it 503 with Retry-After.
    max_queue: int = 0
    #: ``--canary REF=N%`` values: that share of a name's requests goes to the version REF names.
    canary: tuple[str, ...] = ()
    #: ``--shadow REF`` values: every request of the name is mirrored to that version, its answer not returned.
    shadow: tuple[str, ...] = ()
    #: Most shadow copies queued or running at once; past it a copy is dropped and counted.
    shadow_queue: int = 64
    #: Poll the registry every ``poll_s`` for the NAME@ALIAS refs served; swap when an alias moves.
    follow_aliases: bool = False
    poll_s: float = 10.0
    #: Server processes on the port (``--workers``; see _workers.py). Above 1, /metrics adds up the
    #: series of every worker (Prometheus multiprocess mode) and responses name their worker's PID.
    workers: int = 1


class _ClientError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers


def _json(payload: Any, status: int = 200) -> Response:
    # allow_nan=False: a NaN that slipped past check_finite fails loudly instead of sending invalid JSON.
    return Response(json.dumps(payload, separators=(",", ":"), allow_nan=False), status_code=status,
                    media_type="application/json")


def _digits(text: str | None) -> int | None:
    """A header's non-negative integer (ASCII digits only: str.isdigit accepts superscripts)."""
    if text is None or not (0 < len(text) <= 18 and text.isascii() and text.isdigit()):
        return None
    return int(text)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type="application/json", headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = _digits(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise _ClientError(413, f"request body of {declared} bytes is over the limit of {limit} bytes; "
                                "split the rows into smaller requests")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _ClientError(413, f"request body is over the limit of {limit} bytes; split the rows into smaller requests")
        chunks.append(chunk)
    return b"".join(chunks)


async def _parameter(request: Request, key: str, what: str) -> str | None:
    """``parameters.KEY`` of a repository request's (optional) JSON body."""
    body = await _read_body(request, 64 * 1024)
    if not body.strip():
        return None
    parsed = _parse(body)
    params = parsed.get("parameters") if isinstance(parsed, dict) else None
    value = params.get(key) if isinstance(params, dict) else None
    if value is not None and not isinstance(value, str):
        raise _ClientError(400, f"parameters.{key} must be {what}")
    return value


def _plain(value: Any) -> Any:
    """A numpy scalar as the JSON value it stands for."""
    return value.item() if hasattr(value, "item") else value


def _parse(body: bytes) -> Any:
    if not body:
        raise _ClientError(400, "the request has no body; send a JSON inference request")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _ClientError(400, f"malformed JSON: {str(exc)[:200]}") from None


def _prepared(model: Any, columns: dict[str, Any], rows: int) -> pd.DataFrame | None:
    """A batch of tensor requests' joined columns checked on the numpy arrays (``prepared_frame``)."""
    return prepared_frame(Decoded(columns, rows), model)


def float_limit(served: Served) -> float:
    """The largest input magnitude ``served`` computes with: float32's for fp32 graphs."""
    fp32 = served.loaded.runtime == "onnx" or served.model.flavor in _FP32_FLAVORS
    return FLOAT_MAX["FP32"] if fp32 else FLOAT_MAX["FP64"]


def check_load_ref(ref: str, startup_refs: frozenset[str]) -> None:
    """A ref the load endpoint may load: one named at start (model or export folders included) or a
    registry reference. A filesystem path from a request is never read."""
    if ref in startup_refs or REGISTRY_REF.fullmatch(ref):
        return
    shown = ref if len(ref) <= 80 else ref[:77] + "..."
    raise _ClientError(400, f"parameters.ref {shown!r} is neither a registry reference nor a ref this server was "
                            f"started with; allowed: NAME, NAME/VERSION, NAME@ALIAS, or one of {sorted(startup_refs)[:5]}; "
                            "fix: register the model and load it by name (folders are served only when named at start)")


def create_app(
    models: list[Loaded],
    *,
    config: ServeConfig | None = None,
    loader: Callable[[str], Loaded] | None = None,
    registry_loader: Callable[[str], Loaded] | None = None,
    lifecycle: Lifecycle | None = None,
    resolver: Callable[[str], str] | None = None,
) -> Any:
    """The ASGI application serving ``models`` (wrapped in auth, metrics and the access log).

    ``loader`` loads the refs named at start (folders too); ``registry_loader`` (default: ``loader``)
    the registry references a load request names. ``models`` holds the canary and shadow refs of
    ``config`` too (after the champions); ``resolver`` (NAME@ALIAS -> version) is what
    ``follow_aliases`` polls.
    """
    config = config or ServeConfig()
    lifecycle = lifecycle or Lifecycle()
    metrics = Metrics()
    startup_refs = frozenset(m.ref for m in models)
    def limit_threads() -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(config.model_threads)  # OpenMP's limit holds for the calling thread

    executor = ThreadPoolExecutor(max_workers=max(2, len(models)), thread_name_prefix="gravityml-batch",
                                  initializer=limit_threads)
    decoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gravityml-decode")

    def _no_loader(ref: str) -> Loaded:
        raise InferenceError("this server cannot load models", allowed="the models it was started with", got=ref,
                             fix="start it with gravityml serve")

    repo = Repository(
        executor=executor,
        max_batch_size=config.max_batch_size,
        max_delay_ms=config.max_delay_ms,
        loader=_checked_loader(loader or _no_loader, registry_loader or loader or _no_loader, startup_refs),
        on_batch=metrics.on_batch,
        max_queue=config.max_queue,
    )
    for loaded in models:
        repo.add(loaded)
    metrics.models.set(len(repo.index()))
    canaries = [parse_canary(c) for c in config.canary]
    extra = {c.ref for c in canaries} | set(config.shadow)
    rollout = Rollout.build([m for m in models if m.ref not in extra], canaries, config.shadow,
                            {m.ref: m for m in models if m.ref in extra})
    mirror = Mirror(repo, metrics=metrics, max_inflight=config.shadow_queue, timeout_s=config.timeout_s,
                    prediction_log=config.prediction_log)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limit_threads()  # a lone request's model call may run on this thread (Batcher.inline_s)
        grpc_server = None
        if config.grpc_port is not None:
            from gravityml.inference import _grpc

            grpc_server = await _grpc.start(app, repo=repo, config=config, float_limit=float_limit,
                                            version=__version__, host=config.grpc_host, port=config.grpc_port)
            log.info("OIP gRPC on %s:%d", config.grpc_host, config.grpc_port)
        follower = None
        if config.follow_aliases and resolver is not None:
            follower = asyncio.get_running_loop().create_task(
                follow_aliases(repo, rollout, resolver, poll_s=config.poll_s, drain_s=config.timeout_s))
        yield
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        if grpc_server is not None:
            await grpc_server.stop(config.timeout_s)
        # uvicorn has let in-flight requests finish; drain the shadow copies, then what the batchers hold.
        await mirror.close()
        await repo.close()
        executor.shutdown(wait=True)
        decoder.shutdown(wait=True)
        if config.prediction_log is not None:  # write what is queued; close and rename the open file
            config.prediction_log.close()

    app = FastAPI(
        title="gravityml inference server",
        version=__version__,
        description="Open Inference Protocol v2 (KServe / Triton) REST API with dynamic batching.",
        lifespan=lifespan,
    )
    app.state.repository = repo
    app.state.metrics = metrics
    app.state.rollout = rollout
    app.state.mirror = mirror
    if config.prediction_log is not None:  # what the log wrote and could not keep up with, for /metrics
        from prometheus_client import Counter

        # Counters (``_total``), not gauges read at scrape time: under --workers each worker's are
        # written to the multiprocess folder and /metrics adds them up.
        plog = config.prediction_log
        dropped = Counter("gravityml_prediction_log_dropped_rows", "Rows the prediction log dropped (its queue "
                          "was full, or writing failed)", registry=metrics.registry)
        written = Counter("gravityml_prediction_log_rows", "Rows written to the prediction log", registry=metrics.registry)
        dropped.inc(plog.dropped_rows)  # what it counted before this server took it
        written.inc(plog.logged_rows)
        plog.on_dropped, plog.on_logged = dropped.inc, written.inc
    app.state.lifecycle = lifecycle

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ClientDisconnect):
            return Response(status_code=DISCONNECTED)
        # A bug, not the client's fault: logged with its traceback (by Starlette), answered as JSON.
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _error(400, "; ".join(str(e.get("msg")) for e in exc.errors())[:500] or "bad request")

    @app.get("/v2/health/live", tags=["health"])
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=["health"])
    async def ready() -> Response:
        if lifecycle.draining:
            return _json({"ready": False, "reason": "draining: the server is shutting down"}, 503)
        return _json({"ready": bool(repo.names)}, 200 if repo.names else 503)

    @app.get("/v2", tags=["server"])
    async def server_metadata() -> Response:
        return _json({"name": "gravityml", "version": __version__, "extensions": ["model_repository"]})

    def _served(request: Request, name: str, version: str | None) -> Served:
        """A model version looked up by what the request names (metadata, config; inference goes
        through ``_routed``, where the rollout chooses)."""
        try:
            return repo.get(name, version)
        except ModelNotFoundError as exc:
            raise _ClientError(404, exc.message) from None

    def _routed(request: Request, name: str, version: str | None) -> Served:
        """An inference request's model version: the rollout chooses (a canary share, sticky by
        X-Canary-Key); the repository counts it held until ``_counted`` has the answer."""
        chosen = rollout.choose(name, version, request.headers.get(STICKY_HEADER))
        try:
            served = repo.acquire(name, chosen)
        except ModelNotFoundError as exc:
            if version is not None or chosen is None:
                raise _ClientError(404, exc.message) from None
            served = repo.acquire(name, None)  # the canary was unloaded over HTTP: the default answers
        request.state.served = served
        request.state.model = name
        request.state.version = served.loaded.version
        return served

    async def _guarded(request: Request, handler: Callable[[], Any]) -> Response:
        try:
            return await handler()
        except _ClientError as exc:
            request.state.error = exc.message
            return _error(exc.status, exc.message, headers=exc.headers)
        except ModelNotFoundError as exc:
            request.state.error = exc.message
            return _error(404, exc.message)
        except GravityMLError as exc:
            request.state.error = exc.message
            return _error(400, exc.message)
        except ClientDisconnect:
            # The client went away mid-request: nothing to answer, and not a server error.
            request.state.error = "client disconnected"
            return Response(status_code=DISCONNECTED)

    async def _counted(request: Request, handler: Callable[[], Any]) -> Response:
        """``_guarded``, and the answer counted in the statistics of the model version it reached."""
        start = time.perf_counter_ns()
        try:
            response = await _guarded(request, handler)
        finally:
            held = getattr(request.state, "served", None)
            if held is not None:
                repo.release(held)
        if held is not None and response.status_code != DISCONNECTED:
            held.requests.record(response.status_code == 200, time.perf_counter_ns() - start)
        return response

    async def _submit(request: Request, served: Served, frame: Any, probabilities: bool = False, *,
                      prepared: bool = False) -> Any:
        """The batcher's answer within the request's deadline (``X-Timeout-Ms``, at most ``--timeout``);
        a full queue is a 503 with Retry-After, a deadline passed while queued a 504 (the rows were not run)."""
        timeout = config.timeout_s
        header = request.headers.get(TIMEOUT_HEADER)
        if header is not None:
            ms = _digits(header)
            if ms is None or ms == 0:
                raise _ClientError(400, f"{TIMEOUT_HEADER} must be a positive whole number of milliseconds; "
                                        f"got {header[:40]!r}")
            timeout = min(timeout, ms / 1000)
        try:
            return await asyncio.wait_for(
                served.batcher.submit(frame, probabilities=probabilities, timeout_s=timeout, prepared=prepared,
                                      alone=lifecycle.active <= 1), timeout)
        except QueueFull as exc:
            raise _ClientError(503, f"{exc}; retry after 1 s or raise --max-queue",
                               headers={"Retry-After": "1"}) from None
        except BatcherClosed as exc:
            raise _ClientError(503, str(exc), headers={"Retry-After": "0"}) from None
        except asyncio.TimeoutError:  # still queued: cancelled, so never run; running: its answer is dropped
            raise _ClientError(503, f"inference did not finish within {timeout:g} s; retry later or send fewer rows "
                                    "(a request still queued was not run)") from None
        except DeadlineExceeded:
            raise _ClientError(504, f"the request's deadline of {timeout * 1000:g} ms passed before its rows were "
                                    "predicted (not run if still queued); retry later, send fewer rows or allow "
                                    "more time") from None

    def per_version(method: str, suffix: str, **kwargs: Any) -> Callable[[Any], Any]:
        """Register a handler at /v2/models/{name}SUFFIX and /v2/models/{name}/versions/{version}SUFFIX."""

        def register(handler: Any) -> Any:
            for path in (f"/v2/models/{{name}}{suffix}", f"/v2/models/{{name}}/versions/{{version}}{suffix}"):
                app.add_api_route(path, handler, methods=[method], responses=_ERRORS, **kwargs)
            return handler

        return register

    @app.get("/v2/models/stats", tags=["model"])
    async def all_stats() -> Response:  # before /v2/models/{name}, which would take "stats" for a name
        return _json({"model_stats": [repo.get(n, v).statistics() for n in repo.names for v in repo.versions(n)]})

    @per_version("GET", "", tags=["model"])
    async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
        async def run() -> Response:
            return _json(_served(request, name, version).metadata(repo.versions(name)))
        return await _guarded(request, run)

    @per_version("GET", "/ready", tags=["model"])
    async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
        async def run() -> Response:
            served = _served(request, name, version)
            return _json({"name": name, "version": served.loaded.version, "ready": True})
        return await _guarded(request, run)

    async def _infer(request: Request, name: str, version: str | None) -> Response:
        start = time.perf_counter_ns()  # the prediction log's latency

        async def run() -> Response:
            served = _routed(request, name, version)
            raw = await _read_body(request, config.max_body_bytes)
            header = request.headers.get(BINARY_HEADER)
            binary = b""
            if header is not None:
                length = _digits(header)
                if length is None or length > len(raw):
                    raise _ClientError(400, f"{BINARY_HEADER} must be the byte length of the JSON part of the body "
                                            f"(ASCII digits, at most {len(raw)}); got {header[:40]!r}")
                raw, binary = raw[:length], raw[length:]
            # Limits first, from the declared shapes: a 16 MB body over them costs milliseconds, not seconds.
            check_declared(raw, max_rows=config.max_rows, n_features=len(served.model.schema.features))

            def decode() -> tuple[Any, Decoded]:
                body = _parse(raw)
                decoded = decode_request(body, served.model.schema, max_rows=config.max_rows, binary=binary,
                                         float_max=float_limit(served))
                return body, decoded

            if len(raw) + len(binary) <= INLINE_DECODE_BYTES:
                body, decoded = decode()
            else:  # off the event loop: health checks and small requests keep being answered
                body, decoded = await asyncio.get_running_loop().run_in_executor(decoder, decode)
            request.state.rows = decoded.rows
            if decoded.request_id:
                request.state.request_id = decoded.request_id
            if decoded.outputs is not None:
                select_outputs(served.outputs, decoded.outputs)  # unknown names fail before any work
            if decoded.probabilities and served.model.kind != "classifier":
                raise InferenceError(f"a {served.model.kind} has no class probabilities",
                                     allowed="probabilities from classifiers only", got=PROBABILITIES,
                                     fix="leave out the probabilities request")
            # The numpy columns, not a frame: the batch thread joins a batch's columns and checks them once.
            # The answer is checked there too (check_finite), once for the batch.
            rows = Columns(decoded.columns, decoded.rows, functools.partial(_prepared, served.model), check=check_finite)
            predicted, proba = await _submit(request, served, rows, decoded.probabilities)
            shadow = rollout.shadow(name, served.loaded.version)
            if shadow is not None:
                mirror.send(name, shadow, decoded.frame(), predicted)
            if config.prediction_log is not None:
                config.prediction_log.log(decoded.columns, predicted, model_version=f"{name}/{served.loaded.version}",
                                          latency_ms=(time.perf_counter_ns() - start) / 1e6)
            tensors = select_outputs(output_tensors(predicted, proba), decoded.outputs)
            tensors, blob = binary_outputs(tensors, binary_wanted(body))
            payload: dict[str, Any] = {"model_name": name, "model_version": served.loaded.version, "outputs": tensors}
            if decoded.request_id:
                payload["id"] = decoded.request_id
            if not blob:
                return _json(payload)
            head = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
            return Response(head + blob, media_type="application/octet-stream",
                            headers={BINARY_HEADER: str(len(head))})
        return await _counted(request, run)

    @per_version("POST", "/infer", tags=["inference"], openapi_extra={"requestBody": _INFER_BODY})
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        return await _infer(request, name, version)

    @per_version("GET", "/config", tags=["model"])
    async def model_config(request: Request, name: str, version: str | None = None) -> Response:
        """The model configuration as Triton reports it (what ``tritonclient`` get_model_config reads)."""
        async def run() -> Response:
            served = _served(request, name, version)
            return _json(served.config(config.max_batch_size, config.max_delay_ms))
        return await _guarded(request, run)

    @per_version("GET", "/stats", tags=["model"])
    async def model_stats(request: Request, name: str, version: str | None = None) -> Response:
        """Per-version inference statistics as Triton reports them: counts and cumulative nanoseconds."""
        async def run() -> Response:
            if version is not None:
                return _json({"model_stats": [_served(request, name, version).statistics()]})
            _served(request, name, None)  # 404 for an unknown name
            return _json({"model_stats": [repo.get(name, v).statistics() for v in repo.versions(name)]})
        return await _guarded(request, run)

    @app.post("/invocations", tags=["mlflow"], responses=_ERRORS)
    async def invocations(request: Request, model: str | None = None, version: str | None = None) -> Response:
        """MLflow's scoring protocol (``mlflow models serve``): ``dataframe_split``, ``dataframe_records``,
        ``instances`` or ``inputs`` as JSON, or CSV; answers ``{"predictions": [row objects]}``. With
        several models served, ``?model=NAME`` (and ``&version=V``) picks one."""
        async def run() -> Response:
            name = model
            if name is None:
                if len(repo.names) != 1:
                    raise _ClientError(400, f"this server serves {len(repo.names)} models; allowed: {repo.names[:10]}; "
                                            "fix: name one with /invocations?model=NAME")
                name = repo.names[0]
            served = _routed(request, name, version)
            raw = await _read_body(request, config.max_body_bytes)
            ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()

            def decode() -> Any:
                if ctype == "text/csv":
                    import io

                    try:
                        frame = pd.read_csv(io.BytesIO(raw))
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise _ClientError(400, f"malformed CSV: {str(exc)[:200]}") from None
                    body: Any = {"dataframe_split": {"columns": [str(c) for c in frame.columns],
                                                     "data": frame.to_numpy(dtype=object).tolist()}}
                else:
                    body = _parse(raw)
                return decode_mlflow(body, served.model.schema, max_rows=config.max_rows, float_max=float_limit(served))

            if len(raw) <= INLINE_DECODE_BYTES:
                frame = decode()
            else:
                frame = await asyncio.get_running_loop().run_in_executor(decoder, decode)
            request.state.rows = len(frame)
            predicted, _ = await _submit(request, served, frame)
            check_finite(predicted, None)
            shadow = rollout.shadow(name, served.loaded.version)
            if shadow is not None:
                mirror.send(name, shadow, frame, predicted)
            records = [{str(k): _plain(v) for k, v in row.items()} for row in predicted.to_dict(orient="records")]
            response = _json({"predictions": records})
            response.headers["x-model-version"] = served.loaded.version  # which version answered (canary)
            return response

        return await _counted(request, run)

    @app.post("/v2/repository/index", tags=["repository"])
    async def repository_index() -> Response:
        return _json(repo.index())

    @app.post("/v2/repository/models/{name}/load", tags=["repository"], responses=_ERRORS,
              openapi_extra={"requestBody": _LOAD_BODY})
    async def repository_load(name: str, request: Request) -> Response:
        async def run() -> Response:
            ref = await _parameter(request, "ref", "a model reference string such as tumor@production")
            if ref is not None:
                check_load_ref(ref, startup_refs)
            served = await repo.reload(name, ref)
            metrics.models.set(len(repo.index()))
            log.info("loaded %s version %s from %s", name, served.loaded.version, served.loaded.ref)
            return _json({"name": name, "version": served.loaded.version, "ref": served.loaded.ref, "state": "READY"})
        return await _guarded(request, run)

    @app.post("/v2/repository/models/{name}/unload", tags=["repository"], responses=_ERRORS)
    async def repository_unload(name: str, request: Request) -> Response:
        """Stop serving ``name`` (or ``parameters.version`` of it); queued requests are answered first."""
        async def run() -> Response:
            version = await _parameter(request, "version", 'a version string such as "3"')
            dropped = await repo.unload(name, version)
            metrics.models.set(len(repo.index()))
            log.info("unloaded %s version(s) %s", name, ", ".join(dropped))
            return _json({"name": name, "versions": dropped, "state": "UNAVAILABLE"})
        return await _guarded(request, run)

    multiprocess = config.workers > 1 and bool(os.environ.get(MULTIPROC_ENV))

    @app.get("/metrics", tags=["server"])
    async def prometheus() -> Response:
        metrics.pending.clear()  # versions unloaded since the last scrape drop out
        for name in repo.names:
            for version in repo.versions(name):
                metrics.pending.labels(name, version).set(repo.get(name, version).batcher.pending)
        if multiprocess:  # every worker's series from the shared folder: counters summed, gauges by pid
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    infer_routes = {getattr(route, "path", ""): route for route in app.routes if getattr(route, "endpoint", None) is infer}
    direct = _DirectInfer(app, _infer, infer_routes, _bug)
    gated = Gate(direct, metrics=metrics, token=config.token, admin_token=config.admin_token,
                 cors_origins=config.cors_origins, lifecycle=lifecycle)
    return _NamedWorker(gated) if config.workers > 1 else gated


_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")


class _DirectInfer:
    """ASGI: ``POST /v2/models/NAME[/versions/V]/infer`` goes straight to its handler; everything
    else through FastAPI. The handler reads its body and parameters itself (nothing for FastAPI to
    validate), and FastAPI's routing, dependency solving and middleware layers cost about a third
    of the event loop's time per inference request at 64 clients. The route stays registered with
    FastAPI (the OpenAPI description), and ``scope["route"]`` names it for the metrics."""

    def __init__(self, app: Any, handler: Callable[..., Any], routes: dict[str, Any],
                 on_bug: Callable[[Request, Exception], Any]) -> None:
        self.app = app
        self.handler = handler
        self.plain = routes.get("/v2/models/{name}/infer")
        self.versioned = routes.get("/v2/models/{name}/versions/{version}/infer")
        self.on_bug = on_bug

    def __getattr__(self, name: str) -> Any:  # app.state, routes ...: FastAPI's
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST" and self.plain is not None:
            match = _INFER_PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        name, version = match.group(1), match.group(2)
        scope["route"] = self.versioned if version is not None else self.plain
        scope["app"] = self.app
        request = Request(scope, receive, send)
        if version is None:
            version = request.query_params.get("version")  # as FastAPI reads the handler's parameter
        try:
            response = await self.handler(request, name, version)
        except Exception as exc:  # noqa: BLE001 - as FastAPI's handler of Exception: a JSON 500, logged
            if not isinstance(exc, ClientDisconnect):
                log.exception("inference request %s failed", scope["path"][:200])
            response = await self.on_bug(request, exc)
        await response(scope, receive, send)


class _NamedWorker:
    """ASGI wrapper: every HTTP response carries the answering worker's PID (``--workers``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.header = (WORKER_HEADER.encode(), str(os.getpid()).encode())

    def __getattr__(self, name: str) -> Any:  # app.state, routes ...: the wrapped application's
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, named)


def _checked_loader(
    startup: Callable[[str], Loaded], registry: Callable[[str], Loaded], startup_refs: frozenset[str]
) -> Callable[[str], Loaded]:
    """The repository's loader: refs named at start as they were, anything else from the registry only."""

    def load(ref: str) -> Loaded:
        if ref in startup_refs:
            return startup(ref)
        check_load_ref(ref, startup_refs)
        return registry(ref)

    return load


class _DrainingServer:
    """uvicorn's server with a drain before the stop: SIGTERM turns readiness to 503 and closes each
    connection after its next response, for ``drain_s``; then uvicorn's own graceful shutdown
    (stop accepting, finish in-flight requests) runs. A second signal stops at once."""

    def __init__(self, config: Any, lifecycle: Lifecycle, drain_s: float) -> None:
        import uvicorn

        lifecycle_ = lifecycle
        drain = drain_s

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                if sig == signal.SIGTERM and drain > 0 and not lifecycle_.draining:
                    self._captured_signals.append(sig)  # re-raised after shutdown, as uvicorn does
                    lifecycle_.draining = True
                    log.info("SIGTERM: draining for %g s (readiness 503, connections closed after their response)",
                             drain)
                    timer = threading.Timer(drain, lambda: setattr(self, "should_exit", True))
                    timer.daemon = True
                    timer.start()
                    return
                super().handle_exit(sig, frame)

        self.server = Server(config)

    def run(self, sockets: list[Any] | None = None) -> None:
        self.server.run(sockets=sockets)


def serve(
    refs: list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    runtime: str = "native",
    config: ServeConfig | None = None,
    graceful_s: float = 30.0,
    on_ready: Callable[[list[Loaded]], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Load ``refs`` (aliases resolved now) and serve them until SIGINT/SIGTERM.

    On SIGTERM the server first drains for ``config.drain_s`` (readiness 503, every response with
    ``Connection: close``, new connections still answered); then, as on SIGINT, uvicorn stops
    accepting connections and lets in-flight requests finish (up to ``graceful_s``), and the
    batchers drain what they hold. ``reuse_port``: listen on a socket of its own bound with
    SO_REUSEPORT (a worker of ``--workers``: the port is shared with the others).
    """
    import uvicorn

    from gravityml.inference._repository import load_for_serving

    config = config or ServeConfig()

    def loader(ref: str) -> Loaded:
        return load_for_serving(ref, runtime, threads=config.model_threads)  # type: ignore[arg-type]

    def registry_loader(ref: str) -> Loaded:
        return load_for_serving(ref, runtime, threads=config.model_threads, paths=False)  # type: ignore[arg-type]

    def resolver(ref: str) -> str:
        from gravityml.tracking import Workspace, resolve

        return str(resolve(Workspace.current(), ref).version)

    rollout_refs = [parse_canary(c).ref for c in config.canary] + list(config.shadow)
    models = [loader(ref) for ref in [*refs, *rollout_refs]]
    lifecycle = Lifecycle()
    app = create_app(models, config=config, loader=loader, registry_loader=registry_loader, lifecycle=lifecycle,
                     resolver=resolver)
    if on_ready is not None:
        on_ready(models)
    # What startup made (imports, models) is never garbage: out of the collector's sight, a full
    # collection under load walks only what requests make (its pauses were in the p99).
    gc.collect()
    gc.freeze()
    server = _DrainingServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,  # ours is structured (gravityml.access)
            timeout_graceful_shutdown=int(graceful_s),
            lifespan="on",
        ),
        lifecycle,
        config.drain_s,
    )
    server.run(sockets=[listening_socket(host, port)] if reuse_port else None)
