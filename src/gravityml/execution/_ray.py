"""Run placed jobs on a site's Ray cluster through the Ray Jobs API (layer 4).

The submitter (``gravityml train`` here) creates the MLflow run in the catalog's tracking server,
then submits ``<site python> -m gravityml.execution._remote`` with a runtime environment that
carries the placed job (the validated spec and the plan), this gravityml package and the user's own
code named by entry points (``py_modules``), the site's store endpoint and the tracking URI. The
entrypoint runs in the cluster's own environment and asks the cluster for the CPUs, GPUs and
memory the plan chose. Logs stream back while it runs; the run ends FAILED (with its last log
lines) or KILLED when the job fails or is stopped, and no version is registered then.

Ray's own job statuses are the fault model (https://docs.ray.io/en/latest/cluster/running-applications/job-submission/sdk.html);
nothing here retries on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gravityml._typing import MetricSink
from gravityml.data import Site
from gravityml.errors import ExecutorError, GravityMLError, JobFailedError
from gravityml.execution._job import (
    PACKAGE_DIR,
    RESULT_MARK,
    SOURCE_KEY_PREFIX,
    PlacedJob,
    ensure_experiment,
    gravityml_version,
)
from gravityml.execution._jobs import ERROR_MARK, JobRecord, append_record, find_resumable
from gravityml.execution._local import JobResult
from gravityml.placement import Entry, ledger_append
from gravityml.tracking import LINEAGE_PREFIX, Workspace

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
#: Tag on a run whose cluster went away while it ran (``gravityml jobs list`` shows the job as lost).
LOST_TAG = f"{LINEAGE_PREFIX}cluster_lost"
#: Last characters of a failed job's log kept on its run (an MLflow tag holds up to 8,000).
LAST_LOGS_CHARS = 4000
_ADDRESS_ENV = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")  # would override the address we pass


def _stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


@contextlib.contextmanager
def _no_address_override() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in _ADDRESS_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _probe(address: str, timeout_s: float) -> str | None:
    """A TCP connect to the address's host and port: None when it answers, else why not."""
    parsed = urlparse(address)
    default = {"http": 80, "https": 443, "ray": 10001}.get(parsed.scheme, 8265)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


#: Pause between two tries of a Ray Client session the head's proxier failed to start (ray:// addresses).
CLIENT_RETRY_PAUSE_S = 1.0


def _client_session_failed(exc: BaseException) -> bool:
    """Ray Client's "Initialization failure from server": the head's proxier did not get a per-client
    server up in time (``RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S``, 30 s by default, passes on a loaded
    head) or that server died starting; a new session may well start, so it is tried again."""
    return isinstance(exc, ConnectionError) and "Initialization failure from server" in str(exc)


def _last_line(exc: BaseException) -> str:
    """The last non-empty line of an error (a server's traceback ends with what went wrong)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def connect(address: str, *, site: str, timeout_s: float, token_env: str | None = None) -> Any:
    """A ``JobSubmissionClient`` for the cluster at ``address``, or one line that says why not.

    Connecting, the version check and token refusals all happen within ``timeout_s``: the client
    is built in a thread that is abandoned when it does not answer in time.
    """
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:  # pragma: no cover - ray[default] is a dependency
        raise ExecutorError(
            f"site {site!r} runs jobs on Ray, and the Ray Jobs client is not installed", got=address,
            fix="pip install 'ray[default]'",
        ) from None
    fix = (f"start the cluster (ray start --head --dashboard-host ...), correct sites.{site}.executor in the "
           f"catalog, or raise sites.{site}.connect_timeout_s")
    headers: dict[str, str] = {}
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise ExecutorError(
                f"site {site!r}: its Ray cluster uses token authentication and ${token_env} is not set",
                got=token_env, fix=f"export {token_env}=<the cluster's token> (`ray get-auth-token` on the head)",
            )
        headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + timeout_s  # one deadline for the TCP probe and the client together
    why = _probe(address, timeout_s)
    if why is not None:
        raise ExecutorError(f"site {site!r}: cannot reach its Ray cluster at {address!r}: {why}", got=address, fix=fix)
    box: dict[str, Any] = {}

    def build() -> None:
        while True:
            try:
                with _no_address_override():
                    box["client"] = JobSubmissionClient(address, headers=headers or None)
                return
            except BaseException as exc:  # noqa: BLE001 - every failure is reported as one line below
                if _client_session_failed(exc) and time.monotonic() + CLIENT_RETRY_PAUSE_S < deadline:
                    box["tries"] = box.get("tries", 1) + 1  # Ray Client's proxier may start the next one in time
                    box["last"] = exc
                    time.sleep(CLIENT_RETRY_PAUSE_S)
                    continue
                box["error"] = exc
                return

    thread = threading.Thread(target=build, name=f"connect-{site}", daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0.0))
    session_fix = (f"raise sites.{site}.connect_timeout_s, start the head with RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S "
                   f"set higher (Ray's default is 30 s; see ray_client_server_*.err on the head), or name the job "
                   f"server itself (sites.{site}.executor: http://HOST:8265)")
    if thread.is_alive() and "last" in box:
        raise ExecutorError(
            f"site {site!r}: the Ray Client server at {address!r} did not start a session for this client within "
            f"{timeout_s:g} s ({box['tries'] - 1} tries failed; its proxier said: {_last_line(box['last'])[:200]})",
            got=address, fix=session_fix,
        )
    if thread.is_alive():
        raise ExecutorError(
            f"site {site!r}: the Ray cluster at {address!r} accepted a connection but did not answer within "
            f"{timeout_s:g} s", got=address, fix=fix,
        )
    if "error" in box:
        exc = box["error"]
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        if _client_session_failed(exc):
            raise ExecutorError(
                f"site {site!r}: the Ray Client server at {address!r} did not start a session for this client "
                f"({box.get('tries', 1)} tries; its proxier said: {_last_line(exc)[:200]})", got=address, fix=session_fix,
            )
        refused = "401" in first or "403" in first or "auth" in first.lower() or "token" in first.lower()
        raise ExecutorError(
            f"site {site!r}: the Ray cluster at {address!r} refused the connection: {first.strip()[:300]}",
            got=address,
            fix=(f"set sites.{site}.auth_token_env to the variable that holds the cluster's token, and export it"
                 if refused and not token_env else fix if not refused else f"check ${token_env}: the cluster "
                 "does not accept that token"),
        )
    return box["client"]


def _user_code(job: PlacedJob) -> list[str]:
    """Folders or files of the user's own modules that the spec names by entry point (shipped as py_modules)."""
    spec = job.spec
    names = [spec.get("env", {}).get("entry_point"), *(spec.get("model", {}).get(k) for k in
                                                      ("entry_point", "loss", "optimizer"))]
    out: list[str] = []
    for name in names:
        if not name or ":" not in name:
            continue
        top = name.partition(":")[0].split(".")[0]
        base = Path(job.base_dir)
        for candidate in (base / top, base / f"{top}.py"):
            if candidate.exists():
                out.append(str(candidate))
                break
        else:
            found = importlib.util.find_spec(top)
            origin = found.origin if found is not None else None
            if origin and "site-packages" not in origin and "dist-packages" not in origin:
                path = Path(origin)
                out.append(str(path.parent if path.name == "__init__.py" else path))
    return sorted(set(out))


def runtime_env(job: PlacedJob, site_name: str, site: Site, address: str, run_id: str, ray_job_id: str,
                resume: bool) -> dict[str, Any]:
    """The runtime environment of a site's job: the placed job, our package, the user's code, the site's env."""
    env = {
        "GRAVITYML_PLACED_JOB": job.to_json(),
        "GRAVITYML_VERSION": gravityml_version(),
        "GRAVITYML_SITE": site_name,
        "GRAVITYML_CLUSTER": address,
        "GRAVITYML_RUN_ID": run_id,
        "GRAVITYML_RAY_JOB_ID": ray_job_id,
        "GRAVITYML_RESUME": "1" if resume else "0",
        "GRAVITYML_HOME": site.workspace or "~/.gravityml",
        "PYTHONUNBUFFERED": "1",
    }
    if job.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = job.tracking_uri
    if site.storage is not None:
        env.update(site.storage.env())  # keys come from the variables the catalog names, never the catalog
        if site.storage.endpoint_url:
            env["MLFLOW_S3_ENDPOINT_URL"] = site.storage.endpoint_url
    env.update(source_keys(job))
    package = str(PACKAGE_DIR)
    return {"env_vars": env, "py_modules": [package, *_user_code(job)]}


def source_keys(job: PlacedJob, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The keys of the home site's store for a data move, from the variables its catalog entry names.

    They travel as ``GRAVITYML_SOURCE_AWS_*``: the destination job reads the moved data with them and
    writes everything else (its model, its artefacts) with its own site's keys.
    """
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for target, name in job.source_key_env.items():
        if name not in environ:
            raise ExecutorError(
                f"the plan moves the data of {job.name!r} from site {job.moves_from!r}, whose store keys are named "
                f"${name}, and ${name} is not set", allowed="the home site's key, in the variable its storage names",
                got=name,
                fix=f"export {name}=<site {job.moves_from}'s key> (a move reads with the home site's keys, "
                "and writes with the destination's)",
            )
        out[SOURCE_KEY_PREFIX + target] = environ[name]
    return out


def resources(job: PlacedJob) -> dict[str, Any]:
    """What the entrypoint asks of the cluster: the plan's CPUs, GPUs and memory."""
    out: dict[str, Any] = {"entrypoint_num_cpus": job.cpus}
    if job.gpus:
        out["entrypoint_num_gpus"] = job.gpus
    if job.memory_gb:
        out["entrypoint_memory"] = int(job.memory_gb * 1e9)
    return out


class RayExecutor:
    """Runs placed jobs on the Ray cluster of one site, through its job server (or a Ray Client address)."""

    kind = "ray"

    def __init__(self, site_name: str, site: Site, *, on_log: Callable[[str], None] | None = None,
                 poll_s: float = 0.5) -> None:
        assert site.executor is not None
        self.site_name = site_name
        self.site = site
        self.address = site.executor
        self.on_log = on_log or _stderr
        self.poll_s = poll_s

    def client(self) -> Any:
        return connect(self.address, site=self.site_name, timeout_s=self.site.connect_timeout_s,
                       token_env=self.site.auth_token_env)

    def run(
        self,
        job: PlacedJob,
        *,
        workspace: Workspace,
        resume: bool = False,
        sinks: Sequence[MetricSink] = (),
        extra_tags: Mapping[str, str] | None = None,
    ) -> JobResult:
        assert job.site == self.site_name, f"placed on {job.site!r}, handed to the executor of {self.site_name!r}"
        if not job.tracking_uri and workspace.embedded:
            raise ExecutorError(
                f"site {self.site_name!r} runs jobs on its own cluster, which cannot write to this machine's "
                "embedded MLflow store", got=workspace.tracking_uri,
                fix="name the tracking server every site reports to: tracking_uri: http://HOST:5000 in the catalog "
                "(an `mlflow server --serve-artifacts`), or set MLFLOW_TRACKING_URI",
            )
        job = dataclasses.replace(job, tracking_uri=job.tracking_uri or workspace.tracking_uri)
        source_keys(job)  # a move's home-store keys are set, or one line before anything is created
        client = self.client()
        ray_job_id = f"gravityml-{job.name}-{uuid.uuid4().hex[:8]}"
        previous = find_resumable(workspace, job.name, self.site_name) if resume else None
        run_id = previous.run_id if previous is not None else self._create_run(workspace, job, ray_job_id, extra_tags)
        if previous is not None:
            workspace.client.set_tag(run_id, f"{LINEAGE_PREFIX}ray_job_id", ray_job_id)
            if LOST_TAG in workspace.client.get_run(run_id).data.tags:  # its cluster is back: no longer lost
                workspace.client.delete_tag(run_id, LOST_TAG)
        entrypoint = f"{shlex.quote(self.site.python)} -m gravityml.execution._remote"
        try:
            client.submit_job(
                entrypoint=entrypoint,
                submission_id=ray_job_id,
                runtime_env=runtime_env(job, self.site_name, self.site, self.address, run_id, ray_job_id, resume),
                metadata={"gravityml_run_id": run_id, "gravityml_site": self.site_name, "gravityml_model": job.name},
                **resources(job),
            )
        except Exception as exc:  # noqa: BLE001 - the cluster refused the job (bad runtime env, resources, ...)
            _end_run(workspace, run_id, "FAILED", f"submission refused: {exc}")
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ExecutorError(
                f"site {self.site_name!r}: the Ray cluster at {self.address!r} refused the job: {first.strip()[:300]}",
                got=entrypoint, fix=f"check that {self.site.python!r} is the interpreter of the cluster's nodes "
                f"(sites.{self.site_name}.python) and that gravityml's dependencies are installed there",
            ) from None
        append_record(workspace, JobRecord(job_id=ray_job_id, site=self.site_name, address=self.address,
                                           run_id=run_id, model=job.name, experiment=job.mlflow_experiment,
                                           submitted=time.time(), auth_token_env=self.site.auth_token_env,
                                           connect_timeout_s=self.site.connect_timeout_s,
                                           tracking_uri=workspace.tracking_uri))
        self.on_log(f"submitted {ray_job_id} to site {self.site_name!r} ({self.address}); run {run_id}\n")
        try:
            status, logs = follow(client, ray_job_id, self.on_log, self.poll_s,
                                  lost_after_s=self.site.connect_timeout_s)
        except ClusterLost as lost:
            workspace.client.set_tag(run_id, LOST_TAG, f"no answer from {self.address} for {lost.silent_s:.0f} s: "
                                     f"{lost.cause[:300]}")
            _end_run(workspace, run_id, "FAILED", lost.logs)
            raise lost_error(self.site_name, self.address, ray_job_id, lost, run_id) from None
        except KeyboardInterrupt:
            client.stop_job(ray_job_id)
            _end_run(workspace, run_id, "KILLED", "interrupted: the job was stopped on the cluster")
            raise
        return self._result(workspace, job, run_id, ray_job_id, status, logs)

    def _create_run(self, workspace: Workspace, job: PlacedJob, ray_job_id: str,
                    extra_tags: Mapping[str, str] | None) -> str:
        where = {"site": self.site_name, "executor": "ray", "cluster": self.address, "ray_job_id": ray_job_id}
        return create_run(workspace, job, where, extra_tags)

    def _result(self, workspace: Workspace, job: PlacedJob, run_id: str, ray_job_id: str, status: str,
                logs: str) -> JobResult:
        marked = [line[len(RESULT_MARK):] for line in logs.splitlines() if line.startswith(RESULT_MARK)]
        if status == "SUCCEEDED" and marked:
            data = json.loads(marked[-1])
            result = JobResult(**{**data, "workspace": Path(data["workspace"])})
            metered = result.metrics.get("cost/metered_usd", 0.0)
            ledger_append(workspace.ledger_path, Entry(kind="metered", run_id=run_id, experiment=job.experiment,
                                                       model=job.name, site=self.site_name, offer=job.offer,
                                                       usd=metered, status=f"ended on {ray_job_id}"))
            return result
        ended = "KILLED" if status == "STOPPED" else "FAILED"
        _end_run(workspace, run_id, ended, logs)
        errors = [line[len(ERROR_MARK):] for line in logs.splitlines() if line.startswith(ERROR_MARK)]
        tail = [line for line in logs.splitlines() if line.strip()]
        why = errors[-1] if errors else (tail[-1] if tail else "no output")
        raise JobFailedError(
            f"job {ray_job_id} on site {self.site_name!r} ended {status} and registered nothing: {why[:400]}",
            got=status,
            fix=f"see `gravityml jobs logs {ray_job_id}` (the last lines are on run {run_id}); after fixing, "
            "`gravityml train JOB.yaml --resume` continues from the job's last checkpoint on that site",
        )


def create_run(workspace: Workspace, job: PlacedJob, where: Mapping[str, str],
               extra_tags: Mapping[str, str] | None = None) -> str:
    """The MLflow run of a job that runs elsewhere, created by the submitter (the site's job re-opens it)."""
    spec = job.spec
    lineage = {**job.plan, "jurisdiction": job.jurisdiction, **dict(where), **dict(extra_tags or {})}
    run = workspace.client.create_run(
        ensure_experiment(workspace, job), run_name=f"{spec['name']}-{spec['model']['type']}",
        tags={f"{LINEAGE_PREFIX}{k}": str(v) for k, v in lineage.items()},
    )
    return str(run.info.run_id)


def _end_run(workspace: Workspace, run_id: str, status: str, logs: str) -> None:
    """End a run the cluster did not end (a killed driver cannot), with its last log lines.

    Two ends can race (``gravityml jobs stop`` and the submitter that sees the job stop): MLflow's SQL
    store writes a new tag as select-then-insert, so the second writer of the same tag can hit the
    tag table's unique key. The tag is set again then (it exists now: an update)."""
    client = workspace.client
    for attempt in range(3):
        try:
            client.set_tag(run_id, f"{LINEAGE_PREFIX}last_logs", logs[-LAST_LOGS_CHARS:] or "(no output)")
            break
        except Exception as exc:  # noqa: BLE001 - MlflowException / RestException from the store
            if "UNIQUE constraint" not in str(exc) or attempt == 2:
                raise
            time.sleep(0.2)
    if client.get_run(run_id).info.status in ("RUNNING", "SCHEDULED"):
        client.set_terminated(run_id, status=status)


class ClusterLost(Exception):
    """The job server stopped answering while a job was followed (refused, reset or silent) for longer
    than the site's connect timeout: the cluster went away. Carries the log text seen until then."""

    def __init__(self, cause: str, logs: str, silent_s: float) -> None:
        super().__init__(cause)
        self.cause, self.logs, self.silent_s = cause, logs, silent_s


def _answer(call: Callable[[], Any], timeout_s: float) -> Any:
    """``call()``, or TimeoutError when it does not return within ``timeout_s`` (the Ray Jobs client's
    requests have no timeout of their own: a head that vanished from the network would hang them)."""
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=go, name="ray-jobs-poll", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def lost_error(site: str, address: str, job_id: str, lost: ClusterLost, run_id: str | None = None) -> ExecutorError:
    """The one line for a cluster that went away while ``job_id`` ran on it."""
    ended = f"; run {run_id} ended FAILED and nothing was registered" if run_id else ""
    return ExecutorError(
        f"site {site!r}: its Ray cluster at {address!r} went away while job {job_id} was running (no answer for "
        f"{lost.silent_s:.0f} s: {lost.cause[:200]}){ended}",
        allowed=f"a job server that answers within sites.{site}.connect_timeout_s", got=address,
        fix=f"bring the cluster back (ray start --head on site {site}), then `gravityml train JOB.yaml --resume` "
        "resubmits the job there and the same run goes on from its last checkpoint on the site's workspace; "
        "`gravityml jobs list` shows it as lost",
    )


def follow(client: Any, job_id: str, on_log: Callable[[str], None], poll_s: float = 0.5,
           stop_when: Callable[[str], bool] = lambda status: status in TERMINAL,
           lost_after_s: float = 30.0) -> tuple[str, str]:
    """Stream the job's new log text to ``on_log`` until ``stop_when(status)``; returns (status, logs).

    A job server that does not answer (refused, reset, silent) for ``lost_after_s`` raises
    :class:`ClusterLost`; shorter gaps (a restarting dashboard) are waited out.
    """
    seen, logs, failing_since = 0, "", None
    while True:
        try:
            status = str(_answer(lambda: client.get_job_status(job_id), lost_after_s))
            logs = str(_answer(lambda: client.get_job_logs(job_id), lost_after_s))
        except Exception as exc:  # noqa: BLE001 - requests' connection errors, HTTP 5xx, timeouts
            now = time.monotonic()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since >= lost_after_s:
                raise ClusterLost(_last_line(exc), logs, now - failing_since) from None
            time.sleep(poll_s)
            continue
        failing_since = None
        status = status.rsplit(".", 1)[-1]  # JobStatus.SUCCEEDED -> SUCCEEDED
        if len(logs) > seen:
            on_log(logs[seen:])
            seen = len(logs)
        if stop_when(status):
            return status, logs
        time.sleep(poll_s)


def stop(client: Any, job_id: str, workspace: Workspace, run_id: str | None, timeout_s: float = 60.0) -> str:
    """Cancel a job on its cluster and end its run KILLED; returns the job's final status."""
    try:
        client.stop_job(job_id)
    except GravityMLError:
        raise
    except Exception as exc:  # noqa: BLE001 - the job server's answer to an unknown id
        raise ExecutorError(f"job {job_id!r} cannot be stopped: {str(exc).splitlines()[0][:200]}", got=job_id,
                            fix="see `gravityml jobs list`") from None
    deadline = time.monotonic() + timeout_s
    status = "STOPPED"
    while time.monotonic() < deadline:
        status = str(client.get_job_status(job_id)).rsplit(".", 1)[-1]
        if status in TERMINAL:
            break
        time.sleep(0.5)
    if run_id is not None:
        _end_run(workspace, run_id, "KILLED", client.get_job_logs(job_id))
    return status
