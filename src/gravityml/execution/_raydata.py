"""Batch scoring of a folder of files on a site's Ray cluster with Ray Data (layer 4).

``gravityml predict REF s3://bucket/in/ -o s3://bucket/out/ --site S`` submits
``<site python> -m gravityml.execution._raydata`` to the site's job server (as ``train`` submits its
jobs, :mod:`gravityml.execution._ray`). The driver on the cluster::

    list the input files          a folder or an s3:// prefix of Parquet, CSV or JSON Lines files
    ray.data.from_items(files)    one block per file
      .map_batches(_read_file)    Ray Data tasks read each file with gravityml's own reader
                                  (the types `predict` infers), tagging rows with their file and row
      .map_batches(_Scorer)       an actor pool, each actor holding the model once: the same schema
                                  checks and prediction/confidence columns as `gravityml predict`
      .write_parquet(out/_tmp-<job>/)
    check rows out == rows in     every input row scored exactly once
    publish                       move the files from the temporary prefix to out/, `_SUCCESS` last

A failure anywhere (an unreadable file, a row the schema refuses) deletes the temporary prefix, so
nothing is published, and ends the job with one typed error naming the file and row.

``execution`` and ``inference`` share layer 4 and may not import each other; the actors import
``gravityml.inference`` by name when they start (as ``spec`` imports model classes by name), so the
scoring is the very code of single-process ``predict``, and this module has no import of it.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import gravityml.errors as errors
from gravityml.errors import DataError, ExecutorError, GravityMLError, JobFailedError, SpecError
from gravityml.execution._job import PACKAGE_DIR, RESULT_MARK, gravityml_version
from gravityml.execution._jobs import ERROR_MARK

#: The environment variable that carries the batch job (JSON) to the driver on the cluster.
BATCH_ENV = "GRAVITYML_BATCH_JOB"
#: A line (and an exception's text) that carries a typed error as JSON: class, what, allowed, got, fix.
FAILURE_MARK = "GRAVITYML_BATCH_ERROR "
#: The commit marker, written last, once every scored file is published.
SUCCESS = "_SUCCESS"
TMP_PREFIX = "_tmp-"
INPUT_SUFFIXES = (".parquet", ".csv", ".jsonl")
_FILE, _ROW = "_gml_file", "_gml_row"  # where each row came from; dropped before writing
#: Not shipped with the package to the cluster (a web UI's build tree can sit beside the code).
_EXCLUDES = ["node_modules/", "__pycache__/", "*.pyc"]
#: How long the driver waits for every actor of the pool to start (a cluster too small for it fails then).
WAIT_FOR_ACTORS_S = 120


@dataclass(frozen=True)
class BatchJob:
    """What the driver on the cluster scores: a pinned model, where the rows are and where they go."""

    ref: str  # NAME/VERSION (resolved by the submitter) or a model folder the site's nodes see
    input: str  # s3://bucket/prefix/ or a folder (or one file) on the site's nodes
    output: str  # s3://bucket/prefix/ or a folder on the site's nodes
    job_id: str
    concurrency: int | None = None  # actors in the pool; None: half the cluster's CPUs
    batch_size: int = 4096  # rows an actor scores at a time, at most (a batch never spans two files)
    proba: bool = False
    keep_input: bool = True


@dataclass
class RayBatchResult:
    model_ref: str
    rows: int
    files: int
    output: str
    job_id: str
    seconds: float
    outputs: list[str] = field(default_factory=list)
    rows_by_node: dict[str, int] = field(default_factory=dict)  # Ray node id -> rows its actors scored


# ---- files: local folders and s3:// prefixes through pyarrow's filesystems --------------------------------


def filesystem(uri: str) -> tuple[Any, str]:
    """A pyarrow filesystem and the path on it: S3 (the site's endpoint from AWS_ENDPOINT_URL) or local."""
    from pyarrow import fs

    if uri.startswith("s3://"):
        from gravityml.data import s3_filesystem

        parsed = urlparse(uri)
        return s3_filesystem(), f"{parsed.netloc}{parsed.path}".rstrip("/")
    return fs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def _uri(uri: str, path: str) -> str:
    return f"s3://{path}" if uri.startswith("s3://") else path


def _entries(fs: Any, path: str) -> list[Any]:
    from pyarrow import fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return []
    return list(fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True)))


def list_inputs(uri: str) -> list[str]:
    """The files to score: ``uri`` itself, or the Parquet/CSV/JSONL files directly in that folder or prefix."""
    from pyarrow import fs as pafs

    fs, path = filesystem(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [_uri(uri, path)]
        found = sorted(e.path for e in _entries(fs, path) if e.type == pafs.FileType.File
                       and e.base_name.lower().endswith(INPUT_SUFFIXES) and not e.base_name.startswith(("_", ".")))
    except OSError as exc:
        raise DataError(f"input {uri!r} cannot be listed: {str(exc).splitlines()[0][:200]}",
                        allowed="a folder or s3:// prefix these credentials may read", got=uri,
                        fix="check the path, bucket and the site's store keys") from None
    if not found:
        raise DataError(f"input {uri!r} holds no files to score", allowed=[f"*{s}" for s in INPUT_SUFFIXES],
                        got=uri, fix="name a folder or prefix of Parquet, CSV or JSON Lines files")
    return [_uri(uri, p) for p in found]


def check_output(uri: str) -> None:
    """Refuse an output folder that already holds published files (only earlier temporary prefixes may be there)."""
    fs, path = filesystem(uri)
    taken = [e.base_name for e in _entries(fs, path) if not e.base_name.startswith(TMP_PREFIX)]
    if taken:
        raise DataError(f"output {uri!r} already holds {len(taken)} entr{'y' if len(taken) == 1 else 'ies'} "
                        f"({', '.join(sorted(taken)[:3])}{', ...' if len(taken) > 3 else ''})",
                        allowed="an empty or new folder or prefix", got=uri,
                        fix="write to a new output folder, or remove the old scores first")


# ---- the typed error that travels from a Ray task to the submitter -------------------------------------------


class BatchFailure(Exception):
    """A typed gravityml error raised inside a Ray Data task, as text that survives Ray's wrapping."""

    def __init__(self, error: GravityMLError) -> None:
        self.payload = encode(error)
        super().__init__(FAILURE_MARK + self.payload)


def encode(error: GravityMLError) -> str:
    data = {"type": type(error).__name__, "what": error.what, "fix": error.fix}
    if getattr(error, "_has_allowed", False):
        data["allowed"] = _plain(error.allowed)
    if getattr(error, "_has_got", False):
        data["got"] = _plain(error.got)
    return json.dumps(data, default=str)


def _plain(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def decode(payload: str) -> GravityMLError:
    """The error ``encode`` wrote, as its own class (a DataError, SchemaError, ModelError...)."""
    data = json.loads(payload)
    cls = getattr(errors, str(data.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, GravityMLError)) or issubclass(cls, SpecError):
        cls = DataError
    kwargs: dict[str, Any] = {"fix": data.get("fix")}
    for key in ("allowed", "got"):
        if key in data:
            kwargs[key] = data[key]
    return cls(str(data.get("what", "batch scoring failed")), **kwargs)


def find_failure(text: str) -> str | None:
    """The first encoded error in ``text`` (a traceback of nested Ray errors), or None."""
    at = text.find(FAILURE_MARK)
    if at < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[at + len(FAILURE_MARK):])
    except ValueError:
        return None
    return json.dumps(value)


# ---- what runs on the cluster ----------------------------------------------------------------------------


def _read_file(batch: Any, *, tally: Any, rows_per_block: int) -> Any:
    """One input file (a one-row batch naming it) as blocks of at most ``rows_per_block`` rows, tagged
    with their file and 1-based row: a block never holds two files, whose column types may differ."""
    from gravityml.data import read_table

    (path,) = list(batch["file"])
    try:
        frame = read_table(str(path), role="input").frame
    except GravityMLError as exc:
        raise BatchFailure(exc) from None
    if len(frame) == 0:
        raise BatchFailure(DataError(f"input {path!r} has no rows", allowed="files with at least one row", got="0 rows",
                                     fix="remove the empty file, or give it rows"))
    frame[_FILE] = str(path)
    frame[_ROW] = range(1, len(frame) + 1)
    tally.read.remote(str(path), len(frame))
    for start in range(0, len(frame), rows_per_block):
        yield frame.iloc[start:start + rows_per_block].reset_index(drop=True)


class _Tally:
    """Counts kept by a small actor: rows read per file, rows scored per Ray node (for the result)."""

    def __init__(self) -> None:
        self.files: dict[str, int] = {}
        self.nodes: dict[str, int] = {}

    def read(self, path: str, rows: int) -> None:
        self.files[path] = rows  # a retried read task sets the same count again

    def scored(self, node: str, rows: int) -> None:
        self.nodes[node] = self.nodes.get(node, 0) + rows

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        return self.files, self.nodes


class _Scorer:
    """An actor of the pool: loads the model once, scores batches with ``gravityml.inference.score_frame``."""

    def __init__(self, ref: str, proba: bool, keep_input: bool, tally: Any) -> None:
        import ray

        self.inference = importlib.import_module("gravityml.inference")  # same layer: imported by name
        try:
            self.model = self.inference.load(ref)
        except GravityMLError as exc:
            raise BatchFailure(exc) from None
        self.proba, self.keep_input, self.tally = proba, keep_input, tally
        self.node = str(ray.get_runtime_context().get_node_id())

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        rows = batch.drop(columns=[_FILE, _ROW])
        try:
            scored = self.inference.score_frame(self.model, rows, proba=self.proba, keep_input=self.keep_input)
        except GravityMLError as exc:
            raise BatchFailure(self._locate(batch, exc)) from None
        self.tally.scored.remote(self.node, len(scored))
        assert isinstance(scored, pd.DataFrame)
        return scored.reset_index(drop=True)

    def _locate(self, batch: Any, exc: GravityMLError) -> GravityMLError:
        """The error as `gravityml predict FILE` reports it: the file re-read whole, its row numbers."""
        from gravityml.data import read_table

        for path in dict.fromkeys(batch[_FILE]):  # the batch's files, in order
            part = batch[batch[_FILE] == path].drop(columns=[_FILE, _ROW])
            try:
                self.model.prepare(part)
            except GravityMLError:
                try:
                    self.model.prepare(read_table(str(path), role="input").frame)
                except GravityMLError as whole:
                    return type(whole)(f"input {path!r}: {whole.what}", allowed=whole.allowed, got=whole.got,
                                       fix=whole.fix)
                first = int(part.index[0]) if len(part) else 0
                return type(exc)(f"input {path!r} (rows from {int(batch.loc[first, _ROW])}): {exc.what}",
                                 allowed=exc.allowed, got=exc.got, fix=exc.fix)
        return exc


def default_concurrency(cluster_cpus: float) -> int:
    """Actors in the pool when neither the flag nor the job names it: half the cluster's CPUs (the
    rest read and write), at least one."""
    return max(1, int(cluster_cpus) // 2)


def score_on_cluster(job: BatchJob, *, on_log: Callable[[str], None] | None = None) -> RayBatchResult:
    """Score ``job`` with Ray Data on the cluster this process is connected to (``ray.init`` done)."""
    import ray

    started = time.perf_counter()
    say = on_log or (lambda text: print(text, flush=True))
    files = list_inputs(job.input)
    check_output(job.output)
    out_fs, out_path = filesystem(job.output)
    tmp_path = f"{out_path}/{TMP_PREFIX}{job.job_id}"
    concurrency = job.concurrency or default_concurrency(ray.cluster_resources().get("CPU", 1))
    say(f"scoring {len(files)} files with {job.ref} on {concurrency} actors -> {job.output}")
    tally: Any = ray.remote(num_cpus=0)(_Tally).remote()
    try:
        scored = (
            ray.data.from_items([{"file": f} for f in files], override_num_blocks=len(files))
            .map_batches(cast(Any, _read_file), batch_size=1, batch_format="pandas",
                         fn_kwargs={"tally": tally, "rows_per_block": job.batch_size})
            .map_batches(_Scorer, batch_size=None, batch_format="pandas",
                         compute=ray.data.ActorPoolStrategy(size=concurrency),
                         num_cpus=1, fn_constructor_kwargs={"ref": job.ref, "proba": job.proba,
                                                            "keep_input": job.keep_input, "tally": tally})
        )
        scored.write_parquet(tmp_path, filesystem=out_fs)
        read, nodes = ray.get(tally.counts.remote())
        written = _written(out_fs, tmp_path)
        rows_in, rows_out = sum(read.values()), sum(rows for _, rows in written)
        if len(read) != len(files) or rows_out != rows_in:
            raise JobFailedError(
                f"batch job {job.job_id}: {rows_out} rows written for {rows_in} rows read from "
                f"{len(read)} of {len(files)} files; nothing was published", allowed=f"{rows_in} rows written",
                got=rows_out,
                fix="run the job again (its temporary output was removed)")
        outputs = _publish(out_fs, tmp_path, out_path, written)
        _write_success(out_fs, out_path, {"rows": rows_in, "files": len(files), "model": job.ref,
                                          "job_id": job.job_id, "outputs": outputs, "rows_by_node": nodes,
                                          "gravityml": gravityml_version()})
    except BaseException:
        _remove(out_fs, tmp_path)
        if not _entries(out_fs, out_path):  # the folder (or S3's marker of it) this job created: gone too
            _remove(out_fs, out_path)
        raise
    _remove(out_fs, tmp_path)
    return RayBatchResult(model_ref=job.ref, rows=rows_in, files=len(files), output=job.output, job_id=job.job_id,
                          seconds=round(time.perf_counter() - started, 3),
                          outputs=[_uri(job.output, p) for p in outputs], rows_by_node=nodes)


def _written(fs: Any, tmp_path: str) -> list[tuple[str, int]]:
    """The Parquet files under the temporary prefix and their row counts (from their footers)."""
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    out = []
    for entry in sorted(_entries(fs, tmp_path), key=lambda e: e.path):
        if entry.type == pafs.FileType.File and entry.base_name.endswith(".parquet"):
            with fs.open_input_file(entry.path) as handle:
                out.append((entry.path, pq.ParquetFile(handle).metadata.num_rows))
    return out


def _publish(fs: Any, tmp_path: str, out_path: str, written: list[tuple[str, int]]) -> list[str]:
    """Move every scored file from the temporary prefix into the output; on a failure, take back what moved."""
    moved: list[str] = []
    try:
        for path, _ in written:
            target = f"{out_path}/{path.rsplit('/', 1)[-1]}"
            fs.move(path, target)
            moved.append(target)
    except BaseException:
        for target in moved:
            try:
                fs.delete_file(target)
            except OSError:
                pass
        raise
    return moved


def _write_success(fs: Any, out_path: str, summary: Mapping[str, Any]) -> None:
    with fs.open_output_stream(f"{out_path}/{SUCCESS}") as stream:
        stream.write(json.dumps(summary, indent=1, sort_keys=True).encode())


def _remove(fs: Any, path: str) -> None:
    try:
        fs.delete_dir(path)
    except (OSError, FileNotFoundError):
        pass


def _failure_of(exc: BaseException) -> GravityMLError:
    """The typed error behind a failed Ray Data run (its text carries it through Ray's wrappers)."""
    if isinstance(exc, GravityMLError):
        return exc
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    payload = find_failure(text)
    if payload is not None:
        return decode(payload)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return JobFailedError(f"batch scoring failed on the cluster: {(lines[-1] if lines else type(exc).__name__)[:300]}",
                          allowed="every block scored and written", got=type(exc).__name__,
                          fix="see the job's logs on the cluster (`ray job logs JOB_ID`) for the whole traceback")


def main() -> int:
    """The driver: ``python -m gravityml.execution._raydata`` with the job in ``GRAVITYML_BATCH_JOB``."""
    import logging

    import ray

    job = BatchJob(**json.loads(os.environ[BATCH_ENV]))
    if os.environ.get("GRAVITYML_HOME", "").startswith("~"):
        os.environ["GRAVITYML_HOME"] = os.path.expanduser(os.environ["GRAVITYML_HOME"])
    print(f"gravityml {gravityml_version()} batch job {job.job_id}, python {sys.version.split()[0]}", flush=True)
    ray.init(address="auto", logging_level=logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.wait_for_min_actors_s = WAIT_FOR_ACTORS_S  # the whole pool up before the first batch: work spreads over it
    try:
        result = score_on_cluster(job)
    except BaseException as exc:  # noqa: BLE001 - every failure ends as one typed line
        error = _failure_of(exc)
        print(FAILURE_MARK + encode(error), flush=True)
        print(ERROR_MARK + error.message, flush=True)
        return 2
    finally:
        ray.shutdown()
    print(RESULT_MARK + json.dumps(asdict(result)), flush=True)
    return 0


# ---- the submitter: `gravityml predict ... --site S` -------------------------------------------------------------


def _pinned(ref: str, workspace: Any) -> str:
    """A model folder as an absolute path; a registry reference as the NAME/VERSION it names now."""
    from gravityml.models import MANIFEST
    from gravityml.tracking import resolve

    path = Path(ref).expanduser()
    if (path / MANIFEST).exists():
        return str(path.resolve())
    return str(resolve(workspace, ref).ref)


def _where(uri: str) -> str:
    return uri if uri.startswith("s3://") else str(Path(uri).expanduser().resolve())


def predict_on_site(
    ref: str,
    input_uri: str,
    output_uri: str,
    *,
    site: str,
    catalog: str | Path | None = None,
    concurrency: int | None = None,
    batch_size: int = 4096,
    proba: bool = False,
    keep_input: bool = True,
    workspace: Any = None,
    on_log: Callable[[str], None] | None = None,
    poll_s: float = 0.5,
) -> RayBatchResult:
    """Score a folder or prefix of files with model ``ref`` on the Ray cluster of ``site``.

    The output is published only when every row was scored (``_SUCCESS`` last); any failure raises
    the typed error the cluster reported (it names the input file, and the row where there is one).
    """
    from gravityml.data import LOCAL_EXECUTOR, load_catalog
    from gravityml.errors import CatalogError
    from gravityml.execution._jobs import JobRecord, append_record
    from gravityml.execution._ray import _stderr, connect, follow
    from gravityml.tracking import Workspace

    if batch_size < 1:
        raise SpecError("--batch-size", "must be at least 1", allowed=">= 1", got=batch_size,
                        fix="name how many rows an actor scores at a time, or leave it out (4096)")
    if concurrency is not None and concurrency < 1:
        raise SpecError("--concurrency", "must be at least 1", allowed=">= 1", got=concurrency,
                        fix="name how many scoring actors to run, or leave it out (half the cluster's CPUs)")
    cat = load_catalog(catalog)
    if site not in cat.sites:
        raise CatalogError("sites", f"no site named {site!r} in the catalog", allowed=sorted(cat.sites), got=site,
                           fix="pass --site with a site of the catalog (gravityml plan --sites), or --catalog")
    entry = cat.sites[site]
    if entry.executor is None or entry.executor == LOCAL_EXECUTOR:
        raise ExecutorError(f"site {site!r} has no Ray cluster to score on", allowed="a site whose executor is a Ray job server",
                            got=entry.executor or "(none)",
                            fix=f"name its job server (sites.{site}.executor: http://HOST:8265), or leave --site out "
                            "to score one file in this process")
    ws = workspace or Workspace.current()
    if cat.tracking_uri and ws.embedded:
        ws = Workspace(root=ws.root, tracking_uri=cat.tracking_uri, embedded=False)
    pinned = _pinned(ref, ws)
    job_id = f"gravityml-predict-{uuid.uuid4().hex[:8]}"
    job = BatchJob(ref=pinned, input=_where(input_uri), output=_where(output_uri), job_id=job_id,
                   concurrency=concurrency, batch_size=batch_size, proba=proba, keep_input=keep_input)
    env = {BATCH_ENV: json.dumps(asdict(job)), "GRAVITYML_VERSION": gravityml_version(),
           "GRAVITYML_HOME": entry.workspace or "~/.gravityml", "PYTHONUNBUFFERED": "1",
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    if not Path(pinned).is_absolute():
        env["MLFLOW_TRACKING_URI"] = ws.tracking_uri
    if entry.storage is not None:
        env.update(entry.storage.env())
        if entry.storage.endpoint_url:
            env["MLFLOW_S3_ENDPOINT_URL"] = entry.storage.endpoint_url
    client = connect(entry.executor, site=site, timeout_s=entry.connect_timeout_s, token_env=entry.auth_token_env)
    entrypoint = f"{shlex.quote(entry.python)} -m gravityml.execution._raydata"
    log = on_log or _stderr
    try:
        client.submit_job(entrypoint=entrypoint, submission_id=job_id, entrypoint_num_cpus=0,
                          runtime_env={"env_vars": env, "py_modules": [str(PACKAGE_DIR)], "excludes": _EXCLUDES},
                          metadata={"gravityml_site": site, "gravityml_model": pinned, "gravityml_kind": "predict"})
    except Exception as exc:  # noqa: BLE001 - the cluster refused the job
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ExecutorError(f"site {site!r}: the Ray cluster at {entry.executor!r} refused the batch job: "
                            f"{first.strip()[:300]}", allowed="a job the cluster accepts", got=entrypoint,
                            fix=f"check sites.{site}.python and that gravityml's dependencies are installed there") from None
    append_record(ws, JobRecord(job_id=job_id, site=site, address=entry.executor, run_id="", model=pinned,
                                experiment="", submitted=time.time(), auth_token_env=entry.auth_token_env,
                                connect_timeout_s=entry.connect_timeout_s, tracking_uri=ws.tracking_uri,
                                kind="predict", output=job.output))
    log(f"submitted {job_id} to site {site!r} ({entry.executor}): {pinned} on {job.input}\n")
    try:
        status, logs = follow(client, job_id, log, poll_s)
    except KeyboardInterrupt:
        client.stop_job(job_id)
        raise
    marked = [line[len(RESULT_MARK):] for line in logs.splitlines() if line.startswith(RESULT_MARK)]
    if status == "SUCCEEDED" and marked:
        return RayBatchResult(**json.loads(marked[-1]))
    payload = find_failure(logs)
    if payload is not None:
        error = decode(payload)
        error.what = f"batch job {job_id} on site {site!r} published nothing: {error.what}"
        error.args = (error.message,)
        raise error
    tail = [line for line in logs.splitlines() if line.strip()]
    raise JobFailedError(f"batch job {job_id} on site {site!r} ended {status} and published nothing: "
                         f"{(tail[-1] if tail else 'no output')[:400]}", allowed="SUCCEEDED", got=status,
                         fix=f"see the job's logs on the cluster: ray job logs {job_id} --address {entry.executor}")


if __name__ == "__main__":
    # By its package name, so the classes and functions Ray ships to workers are imported there, not pickled.
    from gravityml.execution._raydata import main as _main

    sys.exit(_main())
