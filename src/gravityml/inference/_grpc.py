"""The Open Inference Protocol over gRPC (KServe v2 ``inference.GRPCInferenceService``).

It shares the REST server's models, batchers, limits, token and statistics, on a port of its own
(``--grpc-port``, loopback by default). The messages are the generated code of the protocol's
``grpc_service.proto`` as ``tritonclient[grpc]`` ships it (Triton's superset of KServe's
``grpc_predict_v2.proto``, so ModelConfig and ModelStatistics are there too); tritonclient's gRPC
client works against it unmodified.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as config_pb
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from gravityml.errors import GravityMLError, ModelNotFoundError
from gravityml.inference._batcher import BatcherClosed, DeadlineExceeded, QueueFull
from gravityml.inference._canary import STICKY_HEADER
from gravityml.inference._prepared import prepared_frame
from gravityml.inference._repository import Repository, Served
from gravityml.inference._tensors import (
    FLOAT_MAX,
    PROBABILITIES,
    binary_values,
    check_finite,
    decode_request,
    output_tensors,
    select_outputs,
)

_BINARY = {"BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1",
           "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
             "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _raw(data: list[Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        return b"".join(len(e).to_bytes(4, "little") + e for e in (str(v).encode() for v in data))
    return np.asarray(data, dtype=_BINARY[datatype]).tobytes()


class Servicer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, app: Any, *, repo: Repository, config: Any, float_limit: Any, version: str) -> None:
        self.app = app
        self.metrics = app.state.metrics  # the REST server's: one set of series for both protocols
        self.repo = repo
        self.config = config
        self.float_limit = float_limit
        self.version = version
        self.token = config.token.encode() if config.token else None

    async def _check(self, context: Any) -> None:
        if self.token is None:
            return
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, credentials = value.partition(" ")
                if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token):
                    return
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token; send metadata "
                                                             "'authorization: Bearer TOKEN'")

    async def _served(self, context: Any, name: str, version: str) -> Served:
        try:
            return self.repo.get(name, version or None)
        except ModelNotFoundError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, exc.message)
            raise

    async def _routed(self, context: Any, name: str, version: str) -> Served:
        """The version the rollout chooses (sticky by metadata x-canary-key), held until answered."""
        key = next((v for k, v in context.invocation_metadata() or () if k == STICKY_HEADER), None)
        chosen = self.app.state.rollout.choose(name, version or None, key)
        try:
            return self.repo.acquire(name, chosen)
        except ModelNotFoundError as exc:
            if not version and chosen is not None:  # the canary was unloaded: the default answers
                return self.repo.acquire(name, None)
            await context.abort(grpc.StatusCode.NOT_FOUND, exc.message)
            raise

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (the protocol's names)
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerReadyResponse(ready=bool(self.repo.names) and not self.app.state.lifecycle.draining)

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check(context)
        try:
            self.repo.get(request.name, request.version or None)
        except ModelNotFoundError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check(context)
        return pb.ServerMetadataResponse(name="gravityml", version=self.version, extensions=["model_repository"])

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check(context)
        served = await self._served(context, request.name, request.version)
        meta = served.metadata(self.repo.versions(request.name))

        def tensors(items: list[dict[str, Any]]) -> list[Any]:
            return [pb.ModelMetadataResponse.TensorMetadata(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                    for t in items]

        return pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"],
                                        inputs=tensors(meta["inputs"]), outputs=tensors(meta["outputs"]))

    async def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check(context)
        served = await self._served(context, request.name, request.version)
        config = json_format.ParseDict(served.config(self.config.max_batch_size, self.config.max_delay_ms),
                                       config_pb.ModelConfig(), ignore_unknown_fields=True)
        return pb.ModelConfigResponse(config=config)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check(context)
        if request.name:
            await self._served(context, request.name, request.version)
            versions = [request.version] if request.version else self.repo.versions(request.name)
            entries = [self.repo.get(request.name, v).statistics() for v in versions]
        else:
            entries = [self.repo.get(n, v).statistics() for n in self.repo.names for v in self.repo.versions(n)]
        return json_format.ParseDict({"model_stats": entries}, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._check(context)
        served = await self._routed(context, request.model_name, request.model_version)
        try:
            return await self._answer(served, request, context)
        finally:
            self.repo.release(served)

    async def _answer(self, served: Served, request: Any, context: Any) -> Any:
        start = time.perf_counter_ns()
        name = served.loaded.name
        try:
            response = await self._infer(served, request, context)
        except GravityMLError as exc:
            self._count(served, name, "grpc_INVALID_ARGUMENT", start)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        except QueueFull as exc:
            self._count(served, name, "grpc_RESOURCE_EXHAUSTED", start)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc}; retry later or raise --max-queue")
        except BatcherClosed as exc:
            self._count(served, name, "grpc_UNAVAILABLE", start)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}")
        except DeadlineExceeded:
            self._count(served, name, "grpc_DEADLINE_EXCEEDED", start)
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                "the request's deadline passed before its rows were predicted (not run)")
        except asyncio.TimeoutError:
            self._count(served, name, "grpc_UNAVAILABLE", start)
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"inference did not finish within {self.config.timeout_s:g} s; retry later")
        self._count(served, name, "grpc_OK", start)
        self.metrics.rows.labels(name).inc(request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 0)
        return response

    def _count(self, served: Served, name: str, code: str, start: int) -> None:
        seconds = time.perf_counter_ns() - start
        served.requests.record(code == "grpc_OK", seconds)
        self.metrics.inferences.labels(name, code).inc()
        self.metrics.latency.labels("grpc ModelInfer").observe(seconds / 1e9)
        self.metrics.on_version(name, served.loaded.version, code, seconds / 1e9, code == "grpc_OK")

    async def _infer(self, served: Served, request: Any, context: Any) -> Any:
        raw = list(request.raw_input_contents)
        inputs = []
        for i, tensor in enumerate(request.inputs):
            if raw:
                if i >= len(raw):
                    raise GravityMLError(f"input {tensor.name!r} has no raw_input_contents", allowed="one per input",
                                         got=len(raw), fix="send raw contents for every input, or typed contents")
                data: list[Any] = binary_values(raw[i], tensor.datatype, tensor.name) if tensor.datatype in _BINARY or \
                    tensor.datatype == "BYTES" else []
            else:
                field = _CONTENTS.get(tensor.datatype)
                values = list(getattr(tensor.contents, field)) if field else []
                data = [v.decode("utf-8", "replace") for v in values] if tensor.datatype == "BYTES" else values
            inputs.append({"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape), "data": data})
        params = {PROBABILITIES: True} if any(o.name == PROBABILITIES for o in request.outputs) else {}
        body: dict[str, Any] = {"inputs": inputs, "parameters": params}
        if request.outputs:
            body["outputs"] = [{"name": o.name} for o in request.outputs]
        limit = self.float_limit(served)
        decoded = decode_request(body, served.model.schema, max_rows=self.config.max_rows, float_max=limit)
        if decoded.outputs is not None:
            select_outputs(served.outputs, decoded.outputs)
        timeout = self.config.timeout_s
        remaining = context.time_remaining()  # the client's grpc-timeout, if it sent one
        if remaining is not None:
            timeout = max(0.0, min(timeout, remaining))
        prepared = prepared_frame(decoded, served.model)  # checked on the numpy arrays; None: the model checks
        predicted, proba = await asyncio.wait_for(
            served.batcher.submit(decoded.frame() if prepared is None else prepared,
                                  probabilities=decoded.probabilities and served.model.kind == "classifier",
                                  timeout_s=timeout, prepared=prepared is not None),
            timeout)
        check_finite(predicted, proba)
        shadow = self.app.state.rollout.shadow(served.loaded.name, served.loaded.version)
        if shadow is not None:
            self.app.state.mirror.send(served.loaded.name, shadow, decoded.frame(), predicted)
        tensors = select_outputs(output_tensors(predicted, proba), decoded.outputs)
        response = pb.ModelInferResponse(model_name=served.loaded.name, model_version=served.loaded.version,
                                         id=request.id)
        for t in tensors:
            response.outputs.append(pb.ModelInferResponse.InferOutputTensor(name=t["name"], datatype=t["datatype"],
                                                                            shape=t["shape"]))
            response.raw_output_contents.append(_raw(t["data"], t["datatype"]))
        return response


async def start(app: Any, *, repo: Repository, config: Any, float_limit: Any, version: str, host: str,
                port: int) -> Any:
    """A running gRPC server on ``host:port`` answering for ``repo``."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", config.max_body_bytes)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        Servicer(app, repo=repo, config=config, float_limit=float_limit, version=version), server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server


__all__ = ["FLOAT_MAX", "Servicer", "start"]
