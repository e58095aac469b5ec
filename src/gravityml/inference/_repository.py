"""The models a server holds: by name and version, each with its batcher and OIP metadata."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from gravityml.errors import GravityMLError, ModelError, ModelNotFoundError
from gravityml.inference._batcher import Batcher
from gravityml.inference._load import load
from gravityml.inference._onnx import OnnxModel, is_export_dir
from gravityml.inference._tensors import MATRIX_INPUT, PROBABILITIES, input_metadata, matrix_datatype, output_tensors
from gravityml.models import GravityModel
from gravityml.tracking import Workspace

Runtime = Literal["native", "onnx"]


@dataclass(frozen=True)
class Loaded:
    """A model ready to serve, and what it answers to."""

    name: str
    version: str
    ref: str
    model: GravityModel
    runtime: Runtime


def _sample_row(model: GravityModel) -> pd.DataFrame:
    """One row the schema accepts (used to learn the output tensors and to warm the model up)."""
    row: dict[str, Any] = {}
    for col in model.schema.features:
        if col.kind == "numeric":
            row[col.name] = 0.0
        elif col.kind == "boolean":
            row[col.name] = False
        elif col.kind == "categorical":
            row[col.name] = (col.categories or (None,))[0]
        else:
            row[col.name] = ""
    return pd.DataFrame([row])


def predict_batch(model: GravityModel, frame: pd.DataFrame, probabilities: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    return predict_prepared(model, model.prepare(frame), probabilities)  # checked once, not per call


def predict_prepared(model: GravityModel, frame: pd.DataFrame, probabilities: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``predict_batch`` for rows already checked against the schema (``model.prepare``'s result)."""
    predicted = model._predict(frame)
    proba = model._predict_proba(frame) if probabilities and model.kind == "classifier" else None
    return predicted, proba


def output_metadata(model: GravityModel) -> list[dict[str, Any]]:
    """The OIP ``outputs``, learned by predicting one schema-valid row."""
    try:
        predicted, proba = predict_batch(model, _sample_row(model), model.kind == "classifier")
    except GravityMLError:
        predicted, proba = pd.DataFrame({"prediction": np.zeros(1)}), None
    tensors = output_tensors(predicted, proba)
    return [
        {"name": t["name"], "datatype": t["datatype"], "shape": [-1, *t["shape"][1:]], **({"parameters": t["parameters"]} if "parameters" in t else {})}
        for t in tensors
    ]


@dataclass
class RequestStats:
    """Inference requests of one model version: answered or failed, and their cumulative time."""

    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    fail_ns: int = 0
    last_inference_ms: int = 0

    def record(self, ok: bool, ns: int) -> None:
        if ok:
            self.success_count += 1
            self.success_ns += ns
        else:
            self.fail_count += 1
            self.fail_ns += ns
        self.last_inference_ms = int(time.time() * 1000)


@dataclass
class Served:
    """One model version in the server: its predictor, batcher and metadata."""

    loaded: Loaded
    batcher: Batcher
    outputs: list[dict[str, Any]]
    loaded_at: float = field(default_factory=time.time)
    requests: RequestStats = field(default_factory=RequestStats)
    #: Requests that looked this version up and have not been answered (Repository.acquire/release):
    #: an unloaded version's batcher closes only once this is 0.
    holders: int = 0

    def statistics(self) -> dict[str, Any]:
        """This version's entry of Triton's ``model_stats`` (counts, cumulative nanoseconds)."""
        b, r = self.batcher.stats, self.requests
        with b.lock:
            queue = {"count": b.queue_count, "ns": b.queue_ns}
            compute = {"count": b.compute_count, "ns": b.compute_ns}
            executions = b.executions
            batches = [{"batch_size": size, "compute_infer": {"count": count, "ns": ns}}
                       for size, (count, ns) in sorted(b.batches.items())]
        zero = {"count": 0, "ns": 0}
        return {
            "name": self.loaded.name,
            "version": self.loaded.version,
            "last_inference": r.last_inference_ms,
            "inference_count": r.success_count,
            "execution_count": executions,
            "inference_stats": {
                "success": {"count": r.success_count, "ns": r.success_ns},
                "fail": {"count": r.fail_count, "ns": r.fail_ns},
                "queue": queue,
                "compute_input": dict(zero),
                "compute_infer": compute,
                "compute_output": dict(zero),
                "cache_hit": dict(zero),
                "cache_miss": dict(zero),
            },
            "batch_stats": batches,
        }

    def config(self, max_batch_size: int, max_delay_ms: float) -> dict[str, Any]:
        """The model configuration Triton clients ask for (``/v2/models/NAME/config``)."""
        meta = self.metadata([self.loaded.version])

        def tensors(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"name": t["name"], "data_type": f"TYPE_{'STRING' if t['datatype'] == 'BYTES' else t['datatype']}",
                     "dims": list(t["shape"][1:]) or [1]} for t in items]

        return {
            "name": self.loaded.name,
            "platform": meta["platform"],
            "backend": "gravityml",
            "version_policy": {"specific": {"versions": [self.loaded.version]}},
            "max_batch_size": max_batch_size,
            "input": tensors(meta["inputs"]),
            "output": tensors(meta["outputs"]),
            "dynamic_batching": {"max_queue_delay_microseconds": int(max_delay_ms * 1000)},
            "parameters": {k: {"string_value": str(v)} for k, v in meta["parameters"].items()
                           if isinstance(v, (str, int, float))},
        }

    @property
    def model(self) -> GravityModel:
        return self.loaded.model

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        model = self.model
        params: dict[str, Any] = {
            "kind": model.kind,
            "ref": self.loaded.ref,
            "runtime": self.loaded.runtime,
            "version": self.loaded.version,
            "matrix_input": {
                "name": MATRIX_INPUT,
                "datatype": matrix_datatype(model.schema),
                "shape": [-1, len(model.schema.features)],
            },
            "probabilities": f"set parameters.{PROBABILITIES}=true or request output {PROBABILITIES!r}",
        }
        if model.classes is not None:
            params["classes"] = [str(c) for c in model.classes]
        return {
            "name": self.loaded.name,
            "versions": versions,
            "platform": f"gravityml_{model.flavor}",
            "inputs": input_metadata(model.schema),
            "outputs": self.outputs,
            "parameters": params,
        }


def load_for_serving(
    ref: str,
    runtime: Runtime = "native",
    *,
    threads: int | None = None,
    workspace: Workspace | None = None,
    paths: bool = True,
) -> Loaded:
    """A model by reference, model folder or export folder, in the runtime asked for.

    ``paths=False``: by registry reference only; no folder is looked at (what a load request names).
    """
    if paths and is_export_dir(ref):
        model: GravityModel = OnnxModel(ref, threads=threads)
        meta = model.metadata["model"]  # type: ignore[attr-defined]
        name = meta.get("name") or Path(ref).resolve().name
        return Loaded(name, str(meta.get("version") or 1), ref, model, "onnx")
    native = load(ref, workspace=workspace, paths=paths)
    name = str(native.meta.get("name") or Path(ref).resolve().name)
    version = str(native.meta.get("version") or 1)
    if runtime == "native":
        return Loaded(name, version, ref, native, "native")
    from gravityml.inference._export import export_model

    ws = workspace or Workspace.current()
    target = ws.cache_dir / "onnx" / name / version
    if not is_export_dir(target):
        export_model(ref, target, workspace=ws)
    return Loaded(name, version, ref, OnnxModel(target, threads=threads, encode=getattr(native, "encode", None)), "onnx")


class Repository:
    """Served models by name and version; one default version per name (the one its ref named)."""

    def __init__(
        self,
        *,
        executor: Executor,
        max_batch_size: int,
        max_delay_ms: float,
        loader: Callable[[str], Loaded],
        on_batch: Callable[[str, int, int], None] | None = None,
        max_queue: int = 0,
    ) -> None:
        self.executor = executor
        self.max_queue = max_queue
        self.max_batch_size = max_batch_size
        self.max_delay_ms = max_delay_ms
        self.loader = loader
        self.on_batch = on_batch
        self._models: dict[str, dict[str, Served]] = {}
        self._default: dict[str, str] = {}
        self._refs: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def add(self, loaded: Loaded) -> Served:
        name = loaded.name
        existing = self._models.get(name, {}).get(loaded.version)
        if existing is not None:  # named twice (tumor@production and tumor/7 resolving to one version)
            return existing
        on_batch = self.on_batch

        def report(requests: int, rows: int) -> None:
            if on_batch is not None:
                on_batch(name, requests, rows)

        served = Served(
            loaded=loaded,
            batcher=Batcher(
                lambda frame, proba: predict_batch(loaded.model, frame, proba),
                prepared_fn=lambda frame, proba: predict_prepared(loaded.model, frame, proba),
                executor=self.executor,
                max_batch_size=self.max_batch_size,
                max_delay_ms=self.max_delay_ms,
                on_batch=report,
                max_queue=self.max_queue,
            ),
            outputs=output_metadata(loaded.model),
        )
        versions = self._models.setdefault(name, {})
        versions[loaded.version] = served
        if name not in self._default:
            # Version policy: unversioned requests go to the version the operator named first
            # (``serve tumor@production tumor/7``: the alias), never silently to the highest.
            self._default[name] = loaded.version
            self._refs[name] = loaded.ref
        return served

    @property
    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[str]:
        return sorted(self._models.get(name, {}), key=int_or_zero)

    def get(self, name: str, version: str | None = None) -> Served:
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} is not served here", allowed=self.names, got=name,
                                     fix="call GET /v2/repository/index for what is served")
        key = version if version is not None else self._default[name]
        if key not in versions:
            raise ModelNotFoundError(f"model {name!r} has no version {key!r} here", allowed=self.versions(name),
                                     got=key, fix=f"use one of the versions served, or POST /v2/repository/models/{name}/load")
        return versions[key]

    def acquire(self, name: str, version: str | None = None) -> Served:
        """``get``, counted as held until ``release``: a version is not closed under a request holding it."""
        served = self.get(name, version)
        served.holders += 1
        return served

    @staticmethod
    def release(served: Served) -> None:
        served.holders -= 1

    def alias_refs(self) -> list[tuple[str, str]]:
        """(name, NAME@ALIAS) of each name served from an alias (what --follow-aliases polls)."""
        return [(name, ref) for name, ref in sorted(self._refs.items()) if "@" in ref and not Path(ref).exists()]

    async def _retire(self, served: Served, drain_s: float) -> None:
        """Close ``served`` (no longer looked up) once no request holds it, or after ``drain_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while (served.holders > 0 or served.batcher.pending > 0) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await served.batcher.close()

    def index(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "version": version, "state": "READY", "default": version == self._default[name]}
            for name in self.names
            for version in self.versions(name)
        ]

    async def reload(self, name: str, ref: str | None = None, *, keep: frozenset[str] = frozenset(),
                     drain_s: float = 30.0) -> Served:
        """Load ``ref`` (default: the ref this name was served from) and make it the default.

        Load, switch, drain: the version it replaces is looked up no more, finishes the requests
        that hold it (up to ``drain_s``) and is then closed, unless ``keep`` names it (a canary or
        shadow); requests keep being answered throughout.
        """
        if ref is None and name not in self._refs:
            self.get(name)  # raises not found
        ref = ref or self._refs[name]
        async with self._lock:
            loaded = await asyncio.get_running_loop().run_in_executor(None, self.loader, ref)
            if loaded.name != name:
                raise ModelError(f"{ref!r} is model {loaded.name!r}, not {name!r}", allowed=f"a reference to {name!r}",
                                 got=loaded.name,
                                 fix=f"load a reference to {name!r}")
            previous = self._default.get(name)
            if previous == loaded.version and loaded.version in self._models.get(name, {}):
                return self._models[name][previous]
            served = self.add(loaded)
            self._default[name] = loaded.version
            self._refs[name] = ref
            old = None
            if previous and previous != loaded.version and previous not in keep:
                old = self._models[name].pop(previous, None)
        if old is not None:
            await self._retire(old, drain_s)
        return served

    def default_version(self, name: str) -> str:
        self.get(name)  # raises not found
        return self._default[name]

    async def unload(self, name: str, version: str | None = None) -> list[str]:
        """Stop serving ``name`` (every version, or just ``version``); queued requests are answered first.

        Unloading the default version of a name that keeps others makes the first remaining one the
        default. Returns the versions unloaded.
        """
        self.get(name, version)  # raises not found
        async with self._lock:
            versions = self._models[name]
            dropped = [version] if version is not None else list(versions)
            served = [versions.pop(v) for v in dropped]
            if not versions:
                del self._models[name]
                self._default.pop(name, None)
                self._refs.pop(name, None)
            elif self._default[name] in dropped:
                self._default[name] = next(iter(versions))
                self._refs[name] = versions[self._default[name]].loaded.ref
        for s in served:
            await self._retire(s, 30.0)
        return dropped

    async def close(self) -> None:
        for versions in list(self._models.values()):
            for served in list(versions.values()):
                await served.batcher.close()


def int_or_zero(text: str) -> int:
    return int(text) if text.isdigit() else 0
