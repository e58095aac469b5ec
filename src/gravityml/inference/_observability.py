"""What a server operator watches: Prometheus metrics, a JSON access log, and the gate.

The gate refuses, before any handler runs: cross-origin browser requests (unless ``--cors-origin``
names the origin), POST bodies that are not JSON or the binary extension's octet stream, a missing
or wrong bearer token, and repository calls without the admin token. While the server drains every
response carries ``Connection: close``. All of it lives in one plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which costs a
task and a copy per request: https://github.com/encode/starlette/issues/1438).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("gravityml.access")

#: Paths that answer without a token: probes of the orchestrator, and the API description.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
#: Paths that need the admin token (loading models): never open, never the inference token.
ADMIN_PREFIX = "/v2/repository/models/"
#: The status recorded for a request whose client went away before the answer (nginx's convention).
DISCONNECTED = 499
#: POST bodies taken: JSON, and the binary tensor extension's body.
POST_TYPES = frozenset({"application/json", "application/octet-stream", "text/csv"})  # CSV: /invocations
#: Headers a browser adds (a request without any of them and without a Content-Type is from a
#: program such as tritonclient, which sends none).
_BROWSER_HEADERS = (b"origin", b"sec-fetch-site", b"sec-fetch-mode")
_CORS_HEADERS = b"authorization, content-type, inference-header-content-length"


@dataclass
class Lifecycle:
    """Where the server is in its life; ``draining`` from SIGTERM until the port closes."""

    draining: bool = False
    #: HTTP requests in the application now (the gate counts them).
    active: int = 0
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
        self.pending = Gauge(
            "gravityml_inference_pending_requests", "Requests queued or running, by model and version "
            "(Triton's nv_inference_pending_request_count)", ["model", "version"], registry=self.registry,
        )

        # Per model version (canary, shadow, alias swaps): REST and gRPC inference requests alike.
        self.version_requests = Counter(
            "gravityml_model_version_requests", "Inference requests by model, version and status code",
            ["model", "version", "code"], registry=self.registry,
        )
        self.version_errors = Counter(
            "gravityml_model_version_errors", "Inference requests answered with an error, by model and version",
            ["model", "version"], registry=self.registry,
        )
        self.version_latency = Histogram(
            "gravityml_model_version_request_duration_seconds", "Time from inference request to answer, by model "
            "and version", ["model", "version"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.shadow_requests = Counter(
            "gravityml_shadow_requests", "Copies of requests sent to a shadow version, by outcome "
            "(answered, failed, dropped: the shadow queue was full)", ["model", "version", "outcome"],
            registry=self.registry,
        )
        self.shadow_latency = Histogram(
            "gravityml_shadow_request_duration_seconds", "Time a shadow version took to answer its copy",
            ["model", "version"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.shadow_rows = Counter(
            "gravityml_shadow_rows", "Rows a shadow classifier predicted beside the champion", ["model", "version"],
            registry=self.registry,
        )
        self.shadow_disagreements = Counter(
            "gravityml_shadow_disagreements", "Rows where a shadow classifier's label differs from the champion's",
            ["model", "version"], registry=self.registry,
        )

    def on_version(self, model: str, version: str, code: str, seconds: float, ok: bool) -> None:
        """One inference request answered by ``model``'s ``version`` (``code``: HTTP status or gRPC code)."""
        self.version_requests.labels(model, version, code).inc()
        self.version_latency.labels(model, version).observe(seconds)
        if not ok:
            self.version_errors.labels(model, version).inc()

    def shadow(self, model: str, version: str, outcome: str, seconds: float | None = None) -> None:
        self.shadow_requests.labels(model, version, outcome).inc()
        if seconds is not None:
            self.shadow_latency.labels(model, version).observe(seconds)

    def disagreements(self, model: str, version: str, differ: int, rows: int) -> None:
        self.shadow_rows.labels(model, version).inc(rows)
        self.shadow_disagreements.labels(model, version).inc(differ)

    def on_batch(self, model: str, requests: int, rows: int) -> None:
        self.batch_requests.labels(model).observe(requests)
        self.batch_rows.labels(model).observe(rows)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _bearer(scope: Scope, token: bytes) -> bool:
    value = _header(scope, b"authorization")
    if value is None:
        return False
    scheme, _, credentials = value.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), token)


class Gate:
    """Origin, content-type and token checks, request metrics and one JSON access-log line per request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        token: str | None,
        admin_token: str | None = None,
        cors_origins: tuple[str, ...] = (),
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.token = token.encode() if token else None
        self.admin_token = admin_token.encode() if admin_token else None
        self.cors_origins = frozenset(o.rstrip("/").encode() for o in cors_origins)
        self.lifecycle = lifecycle or Lifecycle()

    def _refusal(self, scope: Scope, origin: bytes | None) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """Why the gate refuses this request (status, message, headers), or None to let it in."""
        path, method = scope["path"], scope["method"]
        if origin is not None and not self._same_origin(scope, origin) and origin not in self.cors_origins:
            shown = origin.decode("latin-1")[:100]
            return 403, (f"cross-origin request from {shown!r} refused; allowed: this server's own origin"
                         + (f" and {sorted(o.decode() for o in self.cors_origins)}" if self.cors_origins else "")
                         + f"; fix: start the server with --cors-origin {shown} to allow that page"), []
        if method == "POST":
            ctype = _header(scope, b"content-type")
            media = ctype.split(b";")[0].strip().lower().decode("latin-1") if ctype is not None else None
            from_browser = any(_header(scope, h) is not None for h in _BROWSER_HEADERS)
            if (media is None and from_browser) or (media is not None and media not in POST_TYPES):
                return 415, (f"POST bodies must be application/json (or application/octet-stream with the binary "
                             f"tensor extension); got {media or 'no Content-Type'!r}; fix: send "
                             "'Content-Type: application/json'"), []
        if path.startswith(ADMIN_PREFIX):
            if self.admin_token is None:
                return 403, ("loading models over HTTP is off on this server; fix: start it with --admin-token "
                             "(or GRAVITYML_SERVE_ADMIN_TOKEN) and send 'Authorization: Bearer ADMIN_TOKEN'"), []
            if not _bearer(scope, self.admin_token):
                return 401, "missing or wrong admin token; send 'Authorization: Bearer ADMIN_TOKEN'", [
                    (b"www-authenticate", b'Bearer realm="gravityml-admin"')]
            return None
        if self.token is None or path in OPEN_PATHS or _bearer(scope, self.token):
            return None
        if path.startswith("/v2/repository/") and self.admin_token is not None and _bearer(scope, self.admin_token):
            return None  # the admin may read the index too
        return 401, "missing or wrong bearer token; send 'Authorization: Bearer TOKEN'", [
            (b"www-authenticate", b'Bearer realm="gravityml"')]

    @staticmethod
    def _same_origin(scope: Scope, origin: bytes) -> bool:
        host = _header(scope, b"host")
        scheme = scope.get("scheme", "http").encode()
        return host is not None and origin == scheme + b"://" + host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        origin = _header(scope, b"origin")
        cors = origin is not None and origin in self.cors_origins
        draining = self.lifecycle.draining

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = []
                if cors:
                    assert origin is not None
                    extra += [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
                if draining or self.lifecycle.draining:
                    extra.append((b"connection", b"close"))
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        scope.setdefault("state", {})
        self.lifecycle.active += 1
        try:
            if cors and scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
                await _reply(send_wrapper, 204, None, extra=[
                    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                    (b"access-control-allow-headers", _CORS_HEADERS), (b"access-control-max-age", b"600")])
                return
            refusal = self._refusal(scope, origin)
            if refusal is None:
                await self.app(scope, receive, send_wrapper)
            else:
                code, message, extra = refusal
                scope["state"]["error"] = message
                await _reply(send_wrapper, code, {"error": message}, extra=extra)
        except ClientDisconnect:
            status["code"] = DISCONNECTED
        finally:
            self.lifecycle.active -= 1
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
            version = state.get("version")
            if version is not None and code != DISCONNECTED:
                self.metrics.on_version(model, str(version), str(code), seconds, code == 200)
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


async def _reply(send: Send, status: int, body: dict[str, Any] | None, extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    payload = json.dumps(body).encode() if body is not None else b""
    headers = [(b"content-length", str(len(payload)).encode()), *extra]
    if body is not None:
        headers.insert(0, (b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
