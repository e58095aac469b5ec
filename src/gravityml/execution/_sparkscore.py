"""Batch scoring of a folder of files on a site's Spark cluster (layer 4).

``gravityml predict REF IN/ -o OUT/ --site S`` where ``S`` names a Spark master
(``executor: {spark: ...}``). The driver is this process (as for training, :mod:`._spark`)::

    list the input files          a folder or an s3:// prefix of Parquet, CSV or JSON Lines files
    session.read.<format>(files)  the executors read them, each row tagged with its file (s3:// objects:
                                  Parquet read by pyarrow on the executors, mapInArrow, the site's store)
    check the columns             the model's schema: missing columns refused before any job
    score                         a spark_* model: its PipelineModel, natively on the cluster, after
                                  the schema's row checks as Spark expressions (one pass);
                                  any other model: mapInPandas, each Python worker of an executor
                                  loading the model once (shipped in a broadcast) and scoring with
                                  ``gravityml.inference.score_frame``, the code of `gravityml predict`
      .write.parquet(out/_tmp-<job>/)   (an s3:// output: each partition one object, written by pyarrow)
    check rows out == rows in     every input row scored exactly once (the files' footers)
    publish                       move the files from the temporary folder to out/, ``_SUCCESS`` last

A failure anywhere (an unreadable file, a row the schema refuses, a killed job) deletes the temporary
folder, so nothing is published, and ends with one typed error naming the input file, and its row
where the schema check names one (the file re-read whole, as `gravityml predict FILE` reports it).

``execution`` and ``inference`` share layer 4 and may not import each other: the scoring functions
import ``gravityml.inference`` by name (as :mod:`._raydata` does), so the prediction and confidence
columns are the very ones single-process ``predict`` writes.
"""

from __future__ import annotations

import atexit
import importlib
import io
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gravityml.data import Site, load_catalog
from gravityml.data._spark import (
    list_s3_objects,
    read_parquet_on_executors,
    s3_key,
    s3_options,
    store_env,
    store_filesystem,
)
from gravityml.errors import DataError, ExecutorError, GravityMLError, JobFailedError, SchemaError, SpecError
from gravityml.execution._job import gravityml_version
from gravityml.execution._raydata import (
    INPUT_SUFFIXES,
    SUCCESS,
    TMP_PREFIX,
    BatchFailure,
    RayBatchResult,
    _entries,
    _publish,
    _remove,
    _uri,
    _write_success,
    _written,
    check_output,
    decode,
    filesystem,
    find_failure,
    list_inputs,
)
from gravityml.execution._spark import active_session, executor_hosts, open_session
from gravityml.models import GravityModel, load_model, read_manifest

_FILE = "_gml_file"  # the input file of each row (Spark's input_file_name()); dropped before writing
_PRED, _PROB = "__gml_prediction", "__gml_probability"  # the pipeline's own output columns, renamed
_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")
_READER = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json"}


@dataclass
class SparkBatchResult(RayBatchResult):
    """A Ray batch result's fields (``rows_by_node`` left empty), and where Spark scored."""

    engine: str = "pipeline"  # a spark_* model's PipelineModel, or "pandas" (mapInPandas)
    spark_app_id: str = ""
    executor_hosts: list[str] = field(default_factory=list)


def spark_site(site: str, catalog: str | Path | None = None) -> Site | None:
    """The catalog's site ``site`` when its executor is a Spark master, else None (Ray, local, unknown)."""
    cat = load_catalog(catalog)
    entry = cat.sites.get(site)
    return entry if entry is not None and entry.spark is not None else None


# ---- paths: what Spark reads (s3a://) and what pyarrow and gravityml's reader read (s3://, a path) ----------


def _spark_path(uri: str) -> str:
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def _plain_path(uri: str) -> str:
    """Spark's ``file:/x`` or ``s3a://b/k`` as gravityml names it: ``/x``, ``s3://b/k``."""
    if uri.startswith("s3a://"):
        return "s3://" + uri[len("s3a://"):]
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _input_uri(uri: str) -> str:
    if uri.startswith("s3a://"):
        return "s3://" + uri[len("s3a://"):]
    return uri if uri.startswith("s3://") else str(Path(uri).expanduser().resolve())


def _read(session: Any, files: list[str], store: dict[str, str] | None = None) -> Any:
    """The files as one Spark DataFrame with each row's file in ``_gml_file`` (one format per job).

    ``s3://`` objects (``store``: the site's) are Parquet read by pyarrow on the executors (no Hadoop S3
    connector); other paths by Spark's readers."""
    from pyspark.sql import functions as F

    kinds = {_READER.get(Path(f).suffix.lower(), "") for f in files}
    if len(kinds) != 1 or "" in kinds:
        raise DataError(f"the input holds files of {len(kinds)} formats ({', '.join(sorted(k or '?' for k in kinds))})",
                        allowed="one format per input folder: Parquet, CSV or JSON Lines", got=sorted(kinds),
                        fix="score each format from its own folder")
    (kind,) = kinds
    if store is not None:
        if kind != "parquet":
            raise DataError(f"an s3:// input is read by pyarrow on the executors, and it holds {kind} files",
                            allowed="Parquet objects under an s3:// prefix", got=files[0],
                            fix="write the input as Parquet, or score a folder the executors read as files")
        return read_parquet_on_executors(session, files, store, file_column=_FILE)
    paths = [_spark_path(f) for f in files]
    try:
        if kind == "csv":
            frame = session.read.csv(paths, header=True, inferSchema=True)
        elif kind == "json":
            frame = session.read.json(paths)
        else:
            frame = session.read.parquet(*paths)
    except Exception as exc:  # AnalysisException from the JVM: a path the executors cannot read
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise DataError(f"Spark could not read the input: {first}", allowed="files the site's executors can read",
                        got=files[0], fix="check the path on the site (its executors read it, not only this machine)"
                        ) from None
    return frame.withColumn(_FILE, F.input_file_name())


# ---- the schema's checks -------------------------------------------------------------------------------------


def check_columns(model: GravityModel, columns: list[str]) -> None:
    """Refuse an input that lacks a feature column (``Schema.validate``'s message, before any Spark job)."""
    import pandas as pd

    if any(c.name not in columns for c in model.schema.features):
        model.schema.validate(pd.DataFrame({c: [None] for c in columns}))  # raises on the missing columns first


def _bad_rows(model: GravityModel, types: dict[str, str]) -> Any:
    """A Spark condition true on a row that ``Schema.validate`` refuses (None: no row can be refused)."""
    from pyspark.sql import functions as F

    bad = None
    for col in model.schema.features:
        c, kind = F.col(f"`{col.name}`"), types[col.name]
        text = F.trim(c.cast("string"))
        cond = None
        if col.kind == "numeric" and kind == "string":
            cond = c.isNotNull() & (text != "") & c.cast("double").isNull()
        elif col.kind == "boolean" and kind == "string":
            cond = c.isNotNull() & ~F.lower(text).isin(*_TRUE, *_FALSE)
        elif col.kind == "boolean" and kind != "boolean":
            cond = c.isNotNull() & ~c.isin(0, 1)
        elif col.kind == "categorical" and col.categories is not None:
            cond = c.isNotNull() & ~text.isin(*col.categories)
        if not col.nullable:
            empty = c.isNull() | (text == "")
            cond = empty if cond is None else (cond | empty)
        if cond is not None:
            bad = cond if bad is None else (bad | cond)
    return bad


@contextmanager
def _readable(path: str, store: dict[str, str] | None) -> Iterator[str]:
    """``path``, or a copy here of the ``s3://`` object ``path`` fetched from the site's store."""
    if store is None or not path.startswith("s3://"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="gravityml-locate-") as tmp:
        local = Path(tmp) / path.rsplit("/", 1)[-1]
        with store_filesystem(store).open_input_stream(s3_key(path)) as stream:
            local.write_bytes(stream.read())
        yield str(local)


def locate(model: GravityModel, file: str, error: GravityMLError | None = None,
           store: dict[str, str] | None = None) -> GravityMLError:
    """The error as `gravityml predict FILE` reports it: the file re-read whole, its row named."""
    from gravityml.data import read_table

    path = _plain_path(file)
    try:
        with _readable(path, store) as readable:
            model.prepare(read_table(readable, role="input").frame)
    except GravityMLError as whole:
        return type(whole)(f"input {path!r}: {whole.what}", allowed=whole.allowed, got=whole.got, fix=whole.fix)
    if error is not None:
        return type(error)(f"input {path!r}: {error.what}", allowed=error.allowed, got=error.got, fix=error.fix)
    return SchemaError(f"input {path!r}: a row the model's schema refuses (as Spark read the file)",
                       allowed=model.schema.feature_names, got=path,
                       fix="check the file's column types against the model's schema (gravityml models show)")


# ---- a spark_* model: its PipelineModel on the cluster -------------------------------------------------------


def _scoring_pipeline(model: Any) -> Any:
    """The model's fitted pipeline without the target's indexer, its last stage writing ``__gml_*`` columns."""
    from pyspark.ml import PipelineModel

    from gravityml.paradigms.spark._train import LABEL

    stages = [s for s in model.pipeline.stages
              if not (s.hasParam("outputCol") and s.isDefined(s.getParam("outputCol")) and s.getOutputCol() == LABEL)]
    last = stages[-1]
    renames = {"predictionCol": _PRED, "probabilityCol": _PROB, "rawPredictionCol": "__gml_raw"}
    extra = {last.getParam(p): v for p, v in renames.items() if last.hasParam(p)}
    return PipelineModel(stages=[*stages[:-1], last.copy(extra)])


def _typed(model: GravityModel, frame: Any) -> Any:
    """The feature columns cast to what the pipeline was fitted on (after the checks passed)."""
    from pyspark.sql import functions as F

    types = dict(frame.dtypes)
    for col in model.schema.features:
        c = F.col(f"`{col.name}`")
        if col.kind == "numeric":
            frame = frame.withColumn(col.name, c.cast("double"))
        elif col.kind == "boolean" and types[col.name] == "string":
            low = F.lower(F.trim(c))
            frame = frame.withColumn(col.name, F.when(low.isin(*_TRUE), True).when(low.isin(*_FALSE), False))
        elif col.kind == "boolean":
            frame = frame.withColumn(col.name, c.cast("boolean"))
        elif col.kind == "categorical":
            frame = frame.withColumn(col.name, c.cast("string"))
    return frame


def score_with_pipeline(model: Any, frame: Any, *, proba: bool, keep_input: bool) -> Any:
    """``frame`` scored by the pipeline: prediction, confidence (and proba_<class>) as `predict` names them.

    The input columns come out as they were read (each is kept under a private name before the
    feature columns are cast for the pipeline).
    """
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    out_names = ["prediction", "confidence"]
    labels = [str(v) for v in (model.meta.get("labels") or [])]
    if proba and model.kind == "classifier":
        out_names += [f"proba_{v}" for v in labels]
    inputs = [c for c in frame.columns if c != _FILE and c not in out_names] if keep_input else []
    kept = frame.select("*", *[F.col(f"`{c}`").alias(f"__gml_in_{i}") for i, c in enumerate(inputs)])
    scored = _scoring_pipeline(model).transform(_typed(model, kept))
    cols: list[Any] = [F.col(f"__gml_in_{i}").alias(c) for i, c in enumerate(inputs)]
    if model.kind == "classifier":
        prob = vector_to_array(F.col(_PROB))
        best = F.array_position(prob, F.array_max(prob))  # 1-based, the first maximum: numpy's argmax
        cols += [F.element_at(F.array(*[F.lit(v) for v in labels]), best.cast("int")).alias("prediction"),
                 F.array_max(prob).alias("confidence")]
        if proba:
            cols += [F.element_at(prob, i + 1).alias(f"proba_{v}") for i, v in enumerate(labels)]
    elif model.kind == "clusterer":
        cols.append(F.col(_PRED).cast("long").alias("prediction"))
        if _PROB in scored.columns:
            cols.append(F.array_max(vector_to_array(F.col(_PROB))).alias("confidence"))
    else:
        cols.append(F.col(_PRED).cast("double").alias("prediction"))
    return scored.select(*cols)


# ---- any other model: mapInPandas, the model loaded once per Python worker --------------------------------


_LOADED: dict[str, tuple[GravityModel, Path]] = {}  # job id -> this Python worker's model and its folder


def _model_bytes(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(str(folder), arcname="model")
    return buffer.getvalue()


def _worker_model(job_id: str, payload: Any) -> GravityModel:
    """The job's model, unpacked and loaded once per Python worker (Spark reuses workers across tasks and
    jobs: an earlier job's model and folder are dropped, and the folder is removed when the worker exits)."""
    if job_id not in _LOADED:
        for _, old in _LOADED.values():
            shutil.rmtree(old, ignore_errors=True)
        _LOADED.clear()
        target = Path(tempfile.mkdtemp(prefix=f"gravityml-{job_id}-"))
        atexit.register(shutil.rmtree, target, True)
        with tarfile.open(fileobj=io.BytesIO(payload.value), mode="r:gz") as tar:
            tar.extractall(target, filter="data")
        _LOADED[job_id] = (load_model(target / "model"), target)
    return _LOADED[job_id][0]


def _score_batches(batches: Iterator[Any], *, job_id: str, payload: Any, proba: bool, keep_input: bool,
                   columns: list[str], store: dict[str, str] | None = None) -> Iterator[Any]:
    """mapInPandas' function on an executor: each Arrow batch scored as `gravityml predict` scores a file."""
    inference = importlib.import_module("gravityml.inference")  # same layer: imported by name
    try:
        model = _worker_model(job_id, payload)
    except GravityMLError as exc:
        raise BatchFailure(exc) from None
    for batch in batches:
        rows = batch.drop(columns=[_FILE])
        try:
            scored = inference.score_frame(model, rows, proba=proba, keep_input=keep_input)
        except GravityMLError as exc:
            raise BatchFailure(_locate_batch(model, batch, exc, store)) from None
        yield scored.reindex(columns=columns)


def _locate_batch(model: GravityModel, batch: Any, exc: GravityMLError,
                  store: dict[str, str] | None = None) -> GravityMLError:
    for file in dict.fromkeys(batch[_FILE]):  # the batch's files, in order: the first one its rows fail in
        try:
            model.prepare(batch[batch[_FILE] == file].drop(columns=[_FILE]))
        except GravityMLError as part:
            return locate(model, str(file), part, store)
    return exc


def score_with_pandas(session: Any, model: GravityModel, folder: Path, frame: Any, *, job_id: str, proba: bool,
                      keep_input: bool, store: dict[str, str] | None = None) -> Any:
    """``frame`` scored by mapInPandas; the output's types are those `predict` gives a sample of its rows.

    ``store``: the site's, where the input is ``s3://`` (a refused row's object is re-read from it)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    inference = importlib.import_module("gravityml.inference")
    sample = frame.limit(16).toPandas()
    try:
        scored = inference.score_frame(model, sample.drop(columns=[_FILE]), proba=proba, keep_input=False)
    except GravityMLError as exc:
        raise _locate_batch(model, sample, exc, store) from None
    outputs = list(scored.columns)
    fields = [f for f in frame.schema.fields if f.name != _FILE and f.name not in outputs] if keep_input else []
    for name in outputs:
        arrow = pa.Array.from_pandas(scored[name]).type
        fields.append(StructField(name, from_arrow_type(pa.string() if arrow == pa.null() else arrow), True))
    schema = StructType(fields)
    payload = session.sparkContext.broadcast(_model_bytes(folder))
    fn = partial(_score_batches, job_id=job_id, payload=payload, proba=proba, keep_input=keep_input,
                 columns=[f.name for f in fields], store=store)
    return frame.mapInPandas(fn, schema)


# ---- an s3:// output: written by pyarrow on the executors (no Hadoop S3 connector) ----------------------------


def _write_on_executors(scored: Any, store: dict[str, str], tmp_key: str) -> None:
    """Each partition of ``scored`` as one Parquet object under ``tmp_key`` (bucket/prefix), by its executor."""
    options = s3_options(store)

    def write(batches: Iterator[Any]) -> Iterator[Any]:  # runs on an executor: pyarrow only
        import uuid

        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyarrow import fs as pafs

        key, rows, stream, writer = f"{tmp_key}/part-{uuid.uuid4().hex}.parquet", 0, None, None
        try:
            for batch in batches:
                if writer is None:
                    stream = pafs.S3FileSystem(**options).open_output_stream(key)
                    writer = pq.ParquetWriter(stream, batch.schema)
                writer.write_batch(batch)
                rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
            if stream is not None:
                stream.close()
        if writer is not None:
            yield pa.RecordBatch.from_pydict({"path": [key], "rows": [rows]})

    scored.mapInArrow(write, "path string, rows long").collect()


# ---- the job --------------------------------------------------------------------------------------------------


def _failure(exc: BaseException, job_id: str) -> GravityMLError:
    """The typed error behind a failed Spark job (a worker's BatchFailure travels in its traceback's text)."""
    if isinstance(exc, GravityMLError):
        return exc
    payload = find_failure(str(exc))
    if payload is not None:
        return decode(payload)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return JobFailedError(f"batch job {job_id}: the Spark job failed: {(lines[0] if lines else type(exc).__name__)[:300]}",
                          allowed="every partition scored and written", got=type(exc).__name__,
                          fix="see the driver's log and the executors' stderr (the worker's work/ folder)")


def _model_folder(ref: str, workspace: Any) -> tuple[Path, str]:
    """A local folder holding the model, and the reference it is reported by (NAME/VERSION, or the folder)."""
    from gravityml.models import MANIFEST
    from gravityml.tracking import download

    path = Path(ref).expanduser()
    if (path / MANIFEST).exists():
        return path.resolve(), str(path.resolve())
    version, local = download(workspace, ref)
    return Path(local), str(version.ref)


def predict_on_spark_site(
    ref: str,
    input_uri: str,
    output_uri: str,
    *,
    site: str,
    catalog: str | Path | None = None,
    proba: bool = False,
    keep_input: bool = True,
    batch_size: int = 4096,
    concurrency: int | None = None,
    workspace: Any = None,
    on_log: Callable[[str], None] | None = None,
) -> SparkBatchResult:
    """Score a folder or prefix of files with model ``ref`` on the Spark cluster of ``site``.

    The output is published only when every row was scored (``_SUCCESS`` last); any failure raises
    a typed error naming the input file (and the row, where the schema refuses one).
    """
    from gravityml.tracking import Workspace

    started = time.perf_counter()
    if batch_size < 1:
        raise SpecError("--batch-size", "must be at least 1", allowed=">= 1", got=batch_size,
                        fix="name how many rows a Python worker scores at a time, or leave it out (4096)")
    if concurrency is not None:
        raise SpecError("--concurrency", "is not used on a Spark site: its executors' cores set how many tasks score "
                        "at once", allowed="no --concurrency with a Spark site", got=concurrency,
                        fix=f"leave --concurrency out, or set spark.executor.cores in sites.{site}.executor.spark.conf")
    cat = load_catalog(catalog)
    entry = cat.sites.get(site)
    if entry is None or entry.spark is None:
        raise ExecutorError(f"site {site!r} has no Spark cluster to score on",
                            allowed=sorted(n for n, s in cat.sites.items() if s.spark is not None),
                            got=site, fix="name a site whose executor is {spark: MASTER}")
    ws = workspace or Workspace.current()
    if cat.tracking_uri and ws.embedded:
        ws = Workspace(root=ws.root, tracking_uri=cat.tracking_uri, embedded=False)
    say = on_log or (lambda text: None)
    job_id = f"gravityml-predict-{uuid.uuid4().hex[:8]}"
    source, model_ref = _model_folder(ref, ws)
    input_uri, output = _input_uri(input_uri), _input_uri(output_uri)
    store = store_env(entry.storage) if input_uri.startswith("s3://") or output.startswith("s3://") else None
    if input_uri.startswith("s3://"):
        assert store is not None
        files = [uri for uri, _, _ in list_s3_objects(input_uri, store, suffixes=INPUT_SUFFIXES, recursive=False)]
    else:
        files = list_inputs(input_uri)
    if output.startswith("s3://"):
        assert store is not None
        out_fs, out_path = store_filesystem(store), s3_key(output)
        taken = [e.base_name for e in _entries(out_fs, out_path) if not e.base_name.startswith(TMP_PREFIX)]
        if taken:
            raise DataError(f"output {output!r} already holds {len(taken)} entries ({', '.join(sorted(taken)[:3])})",
                            allowed="an empty or new prefix", got=output,
                            fix="write to a new output prefix, or remove the old scores first")
    else:
        check_output(output)
        out_fs, out_path = filesystem(output)
    tmp_path = f"{out_path}/{TMP_PREFIX}{job_id}"
    # the executors read a spark_* model's folder themselves: a copy where the site's workspace is shared
    scratch = Path(entry.workspace).expanduser() if entry.workspace else ws.ensure().root / "scratch"
    stage = scratch / f"sparkscore-{job_id}"
    active = active_session(entry.spark.master)  # this process's session on the site's master: used, kept open
    session = active or open_session(site, entry, job_id)
    try:
        if read_manifest(source).get("flavor") == "spark":
            stage.mkdir(parents=True)
            folder = Path(shutil.copytree(source, stage / "model"))
            shuffle = session.conf.get("spark.sql.shuffle.partitions")
            model = load_model(folder)  # the flavor's local_session() hands back the site's session
            session.conf.set("spark.sql.shuffle.partitions", shuffle)
            engine = "pipeline"
        else:
            folder, model, engine = source, load_model(source), "pandas"
        model.meta.setdefault("ref", model_ref)
        frame = _read(session, files, store if input_uri.startswith("s3://") else None)
        check_columns(model, [c for c in frame.columns if c != _FILE])
        app_id = str(session.sparkContext.applicationId)
        say(f"scoring {len(files)} files with {model_ref} on site {site!r} (Spark application {app_id}, "
            f"{engine}) -> {output}\n")
        try:
            if engine == "pipeline":
                bad = _bad_rows(model, dict(frame.dtypes))
                if bad is not None:
                    hit = frame.filter(bad).select(_FILE).limit(1).collect()
                    if hit:
                        raise locate(model, str(hit[0][0]), store=store)
                scored = score_with_pipeline(model, frame, proba=proba, keep_input=keep_input)
            else:
                session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
                scored = score_with_pandas(session, model, folder, frame, job_id=job_id, proba=proba,
                                           keep_input=keep_input, store=store if input_uri.startswith("s3://") else None)
            rows_in = frame.count()
            if output.startswith("s3://"):
                assert store is not None
                _write_on_executors(scored, store, tmp_path)
            else:
                scored.write.parquet(_spark_path(_uri(output, tmp_path)))
            written = _written(out_fs, tmp_path)
            rows_out = sum(rows for _, rows in written)
            if rows_out != rows_in:
                raise JobFailedError(f"batch job {job_id}: {rows_out} rows written for {rows_in} rows read from "
                                     f"{len(files)} files; nothing was published", allowed=f"{rows_in} rows written",
                                     got=rows_out, fix="run the job again (its temporary output was removed)")
            hosts = executor_hosts(session)
            outputs = _publish(out_fs, tmp_path, out_path, written)
            _write_success(out_fs, out_path, {"rows": rows_in, "files": len(files), "model": model_ref,
                                              "job_id": job_id, "outputs": outputs, "engine": engine,
                                              "spark_app_id": app_id, "spark_master": entry.spark.master,
                                              "executor_hosts": hosts, "gravityml": gravityml_version()})
        except BaseException as exc:
            _remove(out_fs, tmp_path)
            if not _entries(out_fs, out_path):  # the folder this job created: gone too
                _remove(out_fs, out_path)
            if isinstance(exc, Exception):
                error = _failure(exc, job_id)
                error.what = f"batch job {job_id} on site {site!r} published nothing: {error.what}"
                error.args = (error.message,)
                raise error from None
            raise
        _remove(out_fs, tmp_path)
    finally:
        if active is None:
            session.stop()
        shutil.rmtree(stage, ignore_errors=True)
    return SparkBatchResult(model_ref=model_ref, rows=rows_in, files=len(files), output=output, job_id=job_id,
                            seconds=round(time.perf_counter() - started, 3), engine=engine, spark_app_id=app_id,
                            executor_hosts=hosts, outputs=[_uri(output, p) for p in outputs])


__all__ = ["SUCCESS", "SparkBatchResult", "predict_on_spark_site", "spark_site"]
