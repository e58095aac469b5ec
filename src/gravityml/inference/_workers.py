"""``gravityml serve --workers N``: N server processes on one port, metrics added up across them.

The supervisor (this module) reserves the port with a bound, never listening ``SO_REUSEPORT``
socket, then starts N copies of the same ``gravityml serve`` command line, each told to be a
worker: each loads its own models, runs its own batchers and binds its own listening socket to
the port with ``SO_REUSEPORT`` (``--workers`` stays on its command line; ``GRAVITYML_SERVE_WORKER``
in its environment makes it a worker), so the kernel spreads new connections over the workers (by a hash
of the connection's addresses). Prometheus runs in multiprocess mode: every worker writes its
series to files in a temporary ``PROMETHEUS_MULTIPROC_DIR``, and ``/metrics`` on any worker
answers the sum over all of them. SIGTERM and SIGINT are passed on to every worker (each drains
as a single server does); when one worker exits on its own, the others are stopped too, and the
folder is removed at exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import FrameType

#: The environment variable that tells a ``gravityml serve`` process it is worker number N.
WORKER_ENV = "GRAVITYML_SERVE_WORKER"
#: prometheus_client's multiprocess folder (read when prometheus_client is imported).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The response header naming the worker process (its PID) that answered.
WORKER_HEADER = "x-gravityml-worker"


def reserve(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT that never listens: it holds the port
    (port 0: a free one) for the workers, and takes no connections itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """A worker's own listening socket on the shared port. Its protocol is IPPROTO_TCP, not 0: asyncio
    sets TCP_NODELAY only on sockets that say so, and without it a response written in two parts
    waits for the client's delayed ACK (about 40 ms)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def _worker_setup() -> None:
    """Runs in the child before exec: its own process group (a terminal's Ctrl-C reaches the
    supervisor alone, which passes it on once), and a killed supervisor takes its workers along."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker_argv(argv: list[str], port: int) -> list[str]:
    """``argv`` (the serve command's own arguments) with ``--port`` set to the reserved port."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--port":
            skip = True
            continue
        if arg.startswith("--port="):
            continue
        out.append(arg)
    return [*out, "--port", str(port)]


def run_workers(argv: list[str], *, workers: int, host: str, port: int, announce: bool = True) -> int:
    """Run ``workers`` copies of ``gravityml serve ARGV`` on ``host:port`` until a signal; the exit code."""
    holder = reserve(host, port)
    port = int(holder.getsockname()[1])
    folder = tempfile.mkdtemp(prefix="gravityml-metrics-")
    env = {**os.environ, MULTIPROC_ENV: folder}
    procs: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def forward(sig: int, _: FrameType | None) -> None:
        stopping.append(sig)
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        for i in range(workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "gravityml", "serve", *worker_argv(argv, port)],
                env={**env, WORKER_ENV: str(i)}, preexec_fn=_worker_setup,
            ))
        if announce:
            print(f"{workers} workers on http://{host}:{port} (PIDs {', '.join(str(p.pid) for p in procs)}); "
                  "metrics added up across them", flush=True)
        while True:
            done = [p for p in procs if p.poll() is not None]
            if len(done) == len(procs):
                break
            if done and not stopping:  # a worker died on its own: stop the rest, report its code
                code = done[0].returncode or 1
                forward(signal.SIGTERM, None)
            time.sleep(0.2)
        if not stopping:
            code = code or next((p.returncode for p in procs if p.returncode), 0)
    finally:
        for proc in procs:  # an exception above: nothing may outlive the supervisor
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        holder.close()
        shutil.rmtree(folder, ignore_errors=True)
    return code
