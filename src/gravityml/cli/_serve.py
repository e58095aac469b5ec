"""`gravityml serve` (Open Inference Protocol server) and `gravityml export` (ONNX, int8, web, ORT)."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import typer

from gravityml.cli._app import app, check_bindable, console, status, table

TOKEN_ENV = "GRAVITYML_SERVE_TOKEN"
ADMIN_TOKEN_ENV = "GRAVITYML_SERVE_ADMIN_TOKEN"


@app.command()
def serve(
    refs: list[str] = typer.Argument(..., help="Models to serve: NAME, NAME/VERSION, NAME@ALIAS, a model or export folder."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8080, help="Port."),
    runtime: str = typer.Option("native", help="native (the model's own library) or onnx (onnxruntime on an export)."),
    max_batch_size: int = typer.Option(64, "--max-batch-size", min=1, help="Most rows one model call gathers."),
    max_delay_ms: float = typer.Option(0.0, "--max-delay-ms", min=0.0, help="Longest wait for more requests "
                                       "before a model call (0: take what is queued; batches form under load)."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.001, help="Seconds a request may take (its deadline; "
                                  "X-Timeout-Ms or gRPC's deadline may shorten it): past it 504, not run if queued."),
    max_queue: int = typer.Option(0, "--max-queue", min=0, help="Most requests queued or running per model "
                                  "(0: unbounded); past it 503 with Retry-After (gRPC RESOURCE_EXHAUSTED)."),
    max_body_mb: float = typer.Option(16.0, "--max-body-mb", min=0.001, help="Largest request body (413 above)."),
    token: str = typer.Option(None, "--token", envvar=TOKEN_ENV, show_envvar=True,
                              help="Require 'Authorization: Bearer TOKEN' (health probes stay open)."),
    admin_token: str = typer.Option(None, "--admin-token", envvar=ADMIN_TOKEN_ENV, show_envvar=True,
                                    help="Bearer token of the repository endpoints (load); without it loading over "
                                    "HTTP is off."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="A browser origin (scheme://host:port) allowed "
                                          "to call the server cross-origin; repeatable. Others get 403."),
    drain_seconds: float = typer.Option(5.0, "--drain-seconds", min=0.0, help="On SIGTERM: seconds of readiness "
                                        "503 with every response closing its connection, before the port closes."),
    grpc_port: int = typer.Option(None, "--grpc-port", help="Also serve the OIP gRPC service (KServe v2) on this "
                                  "port of --host (off by default)."),
    threads: int = typer.Option(1, "--threads", min=1, help="Threads one model call may use."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="One JSON line per request on stderr."),
    log_predictions: str = typer.Option(None, "--log-predictions", help="Log inputs and outputs as Parquet to "
                                        "this folder or s3:// prefix, in the background (for `gravityml monitor`)."),
    log_sample_rate: float = typer.Option(1.0, "--log-sample-rate", help="Share of rows logged."),
    canary: list[str] = typer.Option([], "--canary", help="NAME/VERSION=N%: that share of NAME's requests goes to "
                                     "that version (sticky by the X-Canary-Key header); repeatable, one per model."),
    shadow: list[str] = typer.Option([], "--shadow", help="NAME/VERSION: every request of NAME is mirrored to that "
                                     "version in the background; its answer is counted and logged, never returned."),
    shadow_queue: int = typer.Option(64, "--shadow-queue", min=0, help="Most shadow copies queued or running at "
                                     "once; past it copies are dropped (gravityml_shadow_requests{outcome=dropped})."),
    follow_aliases: bool = typer.Option(False, "--follow-aliases", help="Poll the registry for each NAME@ALIAS "
                                        "served; when the alias moves, load the new version, switch, drain the old."),
    poll_seconds: float = typer.Option(10.0, "--poll-seconds", min=0.05, help="Seconds between registry polls "
                                       "(--follow-aliases)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes on the port (SO_REUSEPORT), each "
                                "with its own models and batchers; /metrics adds up all of them."),
) -> None:
    """Serve models over the Open Inference Protocol v2 (KServe/Triton REST) with dynamic batching."""
    from gravityml.errors import SpecError
    from gravityml.inference import ServeConfig
    from gravityml.inference import serve as serve_
    from gravityml.inference._canary import check_flags

    if runtime not in ("native", "onnx"):
        raise SpecError("--runtime", "unknown runtime", allowed=["native", "onnx"], got=runtime,
                        fix="use --runtime native or --runtime onnx")
    for origin in cors_origin:
        if not re.fullmatch(r"https?://[A-Za-z0-9.\[\]:-]+", origin.rstrip("/")):
            raise SpecError("--cors-origin", "is not a browser origin", allowed="scheme://host[:port], e.g. "
                            "https://app.example.com", got=origin, fix="give the origin without a path")
    if admin_token and token and admin_token == token:
        raise SpecError("--admin-token", "is the same as --token", allowed="a separate secret", got="(the same)",
                        fix="choose a different admin token: whoever may predict must not be able to load models")
    if grpc_port is not None and (not 0 < grpc_port <= 65535 or grpc_port == port):
        raise SpecError("--grpc-port", "is not a free TCP port beside --port", allowed=f"1-65535, not {port}",
                        got=grpc_port, fix="choose another port such as 8081")
    if not 0 <= port <= 65535:  # checked here: uvicorn would fail deep in asyncio with a traceback
        raise SpecError("--port", "is not a TCP port", allowed="0-65535 (0: any free port)", got=port,
                        fix="choose a port such as 8080")
    check_flags(refs, canary, shadow, follow_aliases)  # before anything loads
    from gravityml.inference._workers import WORKER_ENV, run_workers

    worker = WORKER_ENV in os.environ
    if workers > 1:
        _check_workers(workers, grpc_port=grpc_port, admin_token=admin_token or os.environ.get(ADMIN_TOKEN_ENV))
    if not worker:  # a worker's port is held by its supervisor
        check_bindable(host, port)
    if workers > 1 and not worker:
        argv = sys.argv[sys.argv.index("serve") + 1:] if "serve" in sys.argv else None
        if argv is None:
            raise SpecError("--workers", "needs the gravityml command line", allowed="gravityml serve ... --workers N",
                            got=workers, fix="run `gravityml serve` from a shell, or call gravityml.inference.serve "
                            "once per process")
        raise typer.Exit(run_workers(argv, workers=workers, host=host, port=port))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("gravityml.access", "gravityml.serve", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.getLogger("gravityml.access").disabled = not access_log
    config = ServeConfig(
        max_batch_size=max_batch_size,
        max_delay_ms=max_delay_ms,
        timeout_s=timeout,
        max_queue=max_queue,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        token=token or os.environ.get(TOKEN_ENV) or None,
        model_threads=threads,
        admin_token=admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None,
        cors_origins=tuple(cors_origin),
        drain_s=drain_seconds,
        grpc_port=grpc_port,
        grpc_host=host,
        prediction_log=_prediction_logger(refs[0], log_predictions, log_sample_rate) if log_predictions else None,
        canary=tuple(c.strip() for c in canary),
        shadow=tuple(s.strip() for s in shadow),
        shadow_queue=shadow_queue,
        follow_aliases=follow_aliases,
        poll_s=poll_seconds,
        workers=workers,
    )

    def ready(models: list) -> None:  # type: ignore[type-arg]
        rows = [(m.name, m.version, m.ref, m.model.kind, m.runtime) for m in models]
        console.print(table("serving", ["model", "version", "from", "kind", "runtime"], rows))
        auth = "bearer token required" if config.token else "no auth"
        auth += ", loading over HTTP with the admin token" if config.admin_token else ", loading over HTTP off"
        console.print(f"Open Inference Protocol on http://{host}:{port}/v2 ({auth}); metrics /metrics, API /docs")

    try:
        serve_(list(refs), host=host, port=port, runtime=runtime, config=config, on_ready=ready, reuse_port=worker)
    finally:
        if config.prediction_log is not None:
            config.prediction_log.close()  # what is queued is written, the open file closed and renamed


def _check_workers(workers: int, *, grpc_port: int | None, admin_token: str | None) -> None:
    """What --workers does not combine with yet: each worker would act alone."""
    from gravityml.errors import SpecError

    for given, flag, why in (
        (grpc_port is not None, "--grpc-port", "the gRPC service runs in one process only"),
        (bool(admin_token), "--admin-token", "a load or unload over HTTP would reach one worker, not all"),
    ):
        if given:
            raise SpecError(flag, f"does not combine with --workers {workers} yet: {why}",
                            allowed="--workers 1 with it, or --workers N without it", got=f"{flag} with --workers {workers}",
                            fix=f"drop {flag}, or serve with --workers 1")


def _prediction_logger(ref: str, target: str, sample_rate: float) -> object:
    from gravityml.cli._lifecycle import prediction_logger

    return prediction_logger(ref, target, sample_rate)


#: `gravityml export --format`: what each writes and the folder name it defaults to (NAME-<suffix>).
EXPORT_FORMATS = {
    "onnx": "model.onnx, metadata.json, parity.json",
    "web": "index.html, app.js, vendor/ (onnxruntime-web), model.onnx, metadata.json, parity.json",
    "ort": "model.ort (ONNX Runtime Mobile), model.onnx, metadata.json, parity.json",
    "tflite": "model.tflite (TensorFlow Lite, keras models), metadata.json, parity.json",
}


@app.command()
def export(
    ref: str = typer.Argument(..., help="NAME, NAME/VERSION, NAME@ALIAS or a model folder."),
    format: str = typer.Option("onnx", "--format", help="onnx (a graph for onnxruntime), web (a static page that "  # noqa: A002
                               "runs it in a browser with onnxruntime-web), ort (ONNX Runtime's mobile format) or tflite "
                               "(TensorFlow Lite, keras models)."),
    quantize: str = typer.Option(None, "--quantize", help="int8: dynamic int8 quantization of weights (--format onnx), or "
                              "int8 calibrated on the training rows (--format tflite)."),
    output: Path = typer.Option(None, "-o", "--output", help="Folder to write (default: ./NAME-FORMAT[-int8])."),
    data: Path = typer.Option(None, "--data", help="Held-out rows for the parity check (default: the job's test split)."),
    min_agreement: float = typer.Option(0.995, "--min-agreement", help="Least share of labels that must agree."),
    max_diff: float = typer.Option(0.2, "--max-diff", help="Largest allowed difference in probabilities (or in "
                                   "predictions, relative to their standard deviation)."),
) -> None:
    """Export a model to ONNX (optionally int8), a browser page or ORT, checked for parity with the original."""
    from gravityml.data import check_folder_writable
    from gravityml.errors import SpecError

    if format not in EXPORT_FORMATS:
        raise SpecError("--format", "unknown export format", allowed=list(EXPORT_FORMATS), got=format,
                        fix="use --format onnx, web, ort or tflite")
    if quantize is not None and quantize != "int8":
        raise SpecError("--quantize", "unknown quantization", allowed=["int8"], got=quantize,
                        fix="use --quantize int8, or leave it out for an fp32 export")
    if quantize is not None and format not in ("onnx", "tflite"):
        raise SpecError("--quantize", f"applies to --format onnx and tflite, not --format {format}",
                        allowed=["onnx", "tflite"],
                        got=format, fix=f"leave --quantize out for --format {format}")
    if not 0.0 <= min_agreement <= 1.0:  # ranges first: the export itself takes minutes
        raise SpecError("--min-agreement", "is a share of labels", allowed="0.0-1.0", got=min_agreement,
                        fix="give a share such as 0.995 (99.5% of labels agree)")
    if not max_diff >= 0.0:
        raise SpecError("--max-diff", "is a largest difference", allowed="a number >= 0", got=max_diff,
                        fix="give a difference such as 0.2")
    target = output or Path(f"{ref.replace('/', '-').replace('@', '-')}-{format}{'-' + quantize if quantize else ''}")
    if target.exists() and not target.is_dir():
        raise SpecError("--output", f"{str(target)!r} is a file; an export is a folder", allowed="a folder path",
                        got=str(target), fix="name a new folder (or an export folder to replace)")
    check_folder_writable(target.parent, role="--output")
    options = {"data": data, "min_agreement": min_agreement, "max_diff": max_diff}
    with status(f"exporting {ref} to {format}"):
        if format == "onnx":
            from gravityml.inference import export_model

            report = export_model(ref, target, quantize=quantize, **options)  # type: ignore[arg-type]
        elif format == "tflite":
            from gravityml.inference._export import export_tflite

            report = export_tflite(ref, target, quantize=quantize, **options)  # type: ignore[arg-type]
        else:
            from gravityml.inference._web import export_ort, export_web

            report = (export_web if format == "web" else export_ort)(ref, target, **options)  # type: ignore[arg-type]
    console.print(table(f"parity of {report.model_file}", ["", "value"], _parity_rows(report.parity)))
    console.print(f"wrote {report.directory}/ ({EXPORT_FORMATS[format]})")
    if format == "onnx":
        console.print(f"serve it with `gravityml serve {report.directory}`")
    elif format == "web":
        console.print(f"open it from any static file server, e.g. `python -m http.server -d {report.directory} "
                      "-b 127.0.0.1 8000` and http://127.0.0.1:8000/ (it needs no network)")
    elif format == "tflite":
        console.print(f"load {report.model_file} with the TensorFlow Lite interpreter (Android, iOS, microcontrollers)")
    else:
        console.print(f"load {report.model_file} with ONNX Runtime Mobile (Android, iOS) or onnxruntime")


def _parity_rows(p: dict) -> list[tuple[str, object]]:  # type: ignore[type-arg]
    """The parity report's rows that this export has (web and ort exports time no latency)."""
    rows: list[tuple[str, object]] = []
    for key, label in (
        ("rows", "rows compared"),
        ("max_abs_diff", "max abs diff"),
        ("mean_abs_diff", "mean abs diff"),
        ("max_diff_relative_to_std", "max diff / std"),
        ("label_agreement", "label agreement"),
        ("flag_agreement", "anomaly flag agreement"),
        ("confidence_max_abs_diff", "confidence max abs diff"),
        ("size_ratio_fp32_to_int8", "fp32 / int8 size"),
    ):
        if key in p:
            rows.append((label, p[key]))
    for name, size in (p.get("size_bytes") or {}).items():
        rows.append((f"size of {name} (bytes)", size))
    for runtime, lat in (p.get("latency") or {}).items():
        rows.append((f"{runtime} ms/row (batch)", lat.get("batch_ms_per_row")))
        rows.append((f"{runtime} ms (one row)", lat.get("single_row_ms")))
    return rows
