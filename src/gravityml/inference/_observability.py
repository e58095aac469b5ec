"""What a server operator watches: Prometheus metrics, a JSON access log, and the auth gate.

All three live in one plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which costs a
task and a copy per request: https://github.com/encode/starlette/issues/1438).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("gravityml.access")

#: Paths that answer without a token: probes of the orchestrator, and the API description.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The server's Prometheus series, in a registry of its own (several servers per process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gravityml_http_requests", "HTTP requests by route template and status code",
            ["method", "route", "code"], registry=self.registry,
        )
        self.latency = Histogram(
            "gravityml_http_request_duration_seconds", "Time from request to response, by route template",
            ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.errors = Counter(
            "gravityml_http_errors", "Responses with a 4xx or 5xx status, by code", ["code"], registry=self.registry
        )
        self.inferences = Counter(
            "gravityml_inference_requests", "Inference requests by model and status code",
            ["model", "code"], registry=self.registry,
        )
        self.rows = Counter("gravityml_inference_rows", "Rows predicted, by model", ["model"], registry=self.registry)
        self.batch_requests = Histogram(
            "gravityml_batch_requests", "Requests gathered into one model call", ["model"],
            buckets=_BATCH_BUCKETS, registry=self.registry,
        )
        self.batch_rows = Histogram(
            "gravityml_batch_rows", "Rows in one model call", ["model"], buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.models = Gauge("gravityml_models_loaded", "Model versions being served", registry=self.registry)

    def on_batch(self, model: str, requests: int, rows: int) -> None:
        self.batch_requests.labels(model).observe(requests)
        self.batch_rows.labels(model).observe(rows)


class Gate:
    """Bearer-token check, request metrics and one JSON access-log line per request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, token: str | None) -> None:
        self.app = app
        self.metrics = metrics
        self.token = token.encode() if token else None

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None or scope["path"] in OPEN_PATHS:
            return True
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        scope.setdefault("state", {})
        try:
            if self._authorised(scope):
                await self.app(scope, receive, send_wrapper)
            else:
                await _reply(send_wrapper, 401, {"error": "missing or wrong bearer token; send 'Authorization: Bearer TOKEN'"},
                             extra=[(b"www-authenticate", b'Bearer realm="gravityml"')])
        finally:
            self._record(scope, status["code"], time.perf_counter() - start)

    def _record(self, scope: Scope, code: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        state = scope.get("state") or {}
        self.metrics.requests.labels(scope["method"], route, str(code)).inc()
        self.metrics.latency.labels(route).observe(seconds)
        if code >= 400:
            self.metrics.errors.labels(str(code)).inc()
        model = state.get("model")
        if model is not None:
            self.metrics.inferences.labels(model, str(code)).inc()
            if code == 200:
                self.metrics.rows.labels(model).inc(state.get("rows", 0))
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            entry = {
                "ts": round(time.time(), 3),
                "method": scope["method"],
                "path": scope["path"],
                "status": code,
                "ms": round(seconds * 1000, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
            }
            for key in ("model", "version", "rows", "request_id", "error"):
                if key in state:
                    entry[key] = state[key]
            access_log.info(json.dumps(entry, default=str))


async def _reply(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
