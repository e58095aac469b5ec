"""Rollout in the server: a canary share (sticky by X-Canary-Key), a shadow, per-version metrics,
and following an alias under load (issue 14, point 6)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from tests.inference.conftest import Server, free_port, workspace_env, write_job

from gravityml.errors import SpecError
from gravityml.inference._canary import Rollout, Route, check_flags, key_point, parse_canary

ROWS = load_iris().data[:2]


def _body(rows: np.ndarray = ROWS) -> dict[str, object]:
    return {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}]}


def _copy_version(ws: object, name: str, of: str) -> str:
    """A new version of ``name`` with the artefacts of ``of`` (registering is idempotent per run: a run of its own)."""
    from gravityml.tracking import register, resolve

    source = resolve(ws, of)  # type: ignore[arg-type]
    rerun = ws.client.create_run(ws.client.get_run(source.run_id).info.experiment_id)  # type: ignore[attr-defined]
    return register(ws, name, run_id=rerun.info.run_id, source=source.source).ref  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def petal(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``petal``: 1 = iris's logistic regression (production), 2 = a depth-1 tree (disagrees on a third
    of iris), 3 = version 1's artefacts again; ``sepal``: 1 (staging) and 2, both iris's artefacts."""
    import gravityml
    from gravityml.tracking import Workspace, promote

    jobs = tmp_path_factory.mktemp("petal-jobs")
    with workspace_env(trained):
        ws = Workspace.current(trained)
        assert _copy_version(ws, "petal", "iris/1") == "petal/1"
        gravityml.train(write_job(
            jobs / "petal.yaml", name="petal", task="supervised",
            data={"source": "sklearn:iris", "target": "target", "split": {"test": 0.25, "seed": 3}},
            model={"type": "decision_tree", "params": {"max_depth": 1, "random_state": 0}},
            compute={"accelerator": "cpu"},
        ))
        assert _copy_version(ws, "petal", "petal/1") == "petal/3"
        promote(ws, "petal/1", "production")
        assert _copy_version(ws, "sepal", "iris/1") == "sepal/1"
        assert _copy_version(ws, "sepal", "sepal/1") == "sepal/2"
        promote(ws, "sepal/1", "staging")
    return trained


@pytest.fixture(scope="module")
def rollout_server(petal: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int, Path]]:
    """petal@production with petal/3 as a 10% canary and petal/2 as the shadow, and sepal@staging followed
    (polled every 0.2 s); REST and gRPC, logging predictions. One server for the module (a start costs seconds)."""
    grpc_port = free_port()
    logs = tmp_path_factory.mktemp("rollout-logs")
    srv = Server(petal, "petal@production", "sepal@staging", "--canary", "petal/3=10%", "--shadow", "petal/2",
                 "--follow-aliases", "--poll-seconds", "0.2", "--grpc-port", str(grpc_port),
                 "--log-predictions", str(logs))
    yield srv, grpc_port, logs
    srv.stop()


def _champion_key(share: float = 0.10) -> str:
    return next(f"user-{i}" for i in range(100) if key_point(f"user-{i}") >= share)


def _canary_key(share: float = 0.10) -> str:
    return next(f"user-{i}" for i in range(1000) if key_point(f"user-{i}") < share)


# ---- the Rollout object: the one routing decision -----------------------------------------------

def test_the_canary_share_holds_over_2000_requests_keyed_or_not() -> None:
    rollout = Rollout({"petal": Route(canary="7", share=parse_canary("petal/7=10%").share)}, seed=1)
    keyed = sum(rollout.choose("petal", key=f"user-{i}") == "7" for i in range(2000)) / 2000
    drawn = sum(rollout.choose("petal") == "7" for _ in range(2000)) / 2000
    print(f"canary share over 2,000 requests: {keyed:.3f} by X-Canary-Key, {drawn:.3f} drawn (target 0.100)")
    assert abs(keyed - 0.10) <= 0.03 and abs(drawn - 0.10) <= 0.03
    assert rollout.choose("petal", "1", key="user-1") == "1"  # a request naming a version gets it
    assert rollout.choose("iris") is None and rollout.shadow("petal", "1") is None


@pytest.mark.parametrize(("args", "match"), [
    ((["petal@production"], ["iris/2=10%"], [], False), "which this server does not serve"),
    ((["petal@production"], ["petal/2=150%"], [], False), "outside 0-100%"),
    ((["petal@production"], ["petal/2:10"], [], False), "is not REF=SHARE%"),
    ((["petal@production"], ["petal=10%"], [], False), "names no version"),
    ((["petal@production"], [], ["petal/2", "petal/3"], False), "named twice"),
    ((["petal/1"], [], [], True), "no model is served by alias"),
])
def test_bad_rollout_flags_are_typed_errors(args: tuple[list[str], list[str], list[str], bool], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        check_flags(*args)


@pytest.mark.parametrize("flags", [["--canary", "iris/2=10%"], ["--canary", "petal/2=-5%"], ["--shadow", "petal"]])
def test_bad_rollout_flags_exit_2_with_one_line(petal: Path, flags: list[str], monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from gravityml.cli import main

    monkeypatch.setenv("GRAVITYML_HOME", str(petal))
    with pytest.raises(SystemExit) as exited:
        main(["serve", "petal@production", *flags, "--port", str(free_port())])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and len(err.splitlines()) == 1 and ("--canary" in err or "--shadow" in err), err


def test_a_canary_of_the_champions_own_version_is_refused_at_start(petal: Path) -> None:
    from gravityml.inference._repository import load_for_serving

    with workspace_env(petal):
        champion, same = load_for_serving("petal@production"), load_for_serving("petal/1")
    with pytest.raises(SpecError, match="the one 'petal' already serves"):
        Rollout.build([champion], [parse_canary("petal/1=10%")], [], {"petal/1": same})


def test_a_full_shadow_queue_drops_and_counts_and_never_waits(petal: Path) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from gravityml.inference._canary import Mirror
    from gravityml.inference._observability import Metrics
    from gravityml.inference._repository import Repository, load_for_serving

    with workspace_env(petal):
        tree, logistic = load_for_serving("petal/2"), load_for_serving("petal/1")
    frame = pd.DataFrame(load_iris().data[::3], columns=tree.model.schema.feature_names)
    champion = logistic.model.predict(frame)
    metrics = Metrics()

    async def main() -> float:
        with ThreadPoolExecutor(2) as pool:
            repo = Repository(executor=pool, max_batch_size=64, max_delay_ms=0, loader=lambda ref: tree)
            repo.add(tree)
            mirror = Mirror(repo, metrics=metrics, max_inflight=2)
            start = time.perf_counter()
            for _ in range(6):  # in one tick: two copies go, four find the queue full
                mirror.send("petal", "2", frame, champion)
            sent_s = time.perf_counter() - start
            await mirror.close()
            await repo.close()
            assert repo.get("petal", "2").holders == 0
            return sent_s

    sent_s = asyncio.run(main())
    count = {outcome: metrics.shadow_requests.labels("petal", "2", outcome)._value.get()
             for outcome in ("answered", "dropped", "failed")}
    assert count == {"answered": 2, "dropped": 4, "failed": 0} and sent_s < 0.05
    rows = metrics.shadow_rows.labels("petal", "2")._value.get()
    assert rows == 100 and 20 <= metrics.shadow_disagreements.labels("petal", "2")._value.get() <= 50


# ---- a served canary and shadow -------------------------------------------------------------------

def test_sticky_keys_land_where_the_rollout_says_and_unkeyed_requests_split(rollout_server: tuple[Server, int, Path]) -> None:
    srv, _, _ = rollout_server
    url = f"{srv.url}/v2/models/petal/infer"
    with httpx.Client(timeout=30) as client:
        keys = [f"key-{i}" for i in range(60)]
        got = {k: client.post(url, json=_body(), headers={"X-Canary-Key": k}).json()["model_version"] for k in keys}
        assert got == {k: "3" if key_point(k) < 0.10 else "1" for k in keys}
        again = {k: client.post(url, json=_body(), headers={"X-Canary-Key": k}).json()["model_version"] for k in keys[:20]}
        assert again == {k: got[k] for k in keys[:20]}  # sticky: never flips
        drawn = [client.post(url, json=_body()).json()["model_version"] for _ in range(200)]
    share = drawn.count("3") / len(drawn)
    print(f"end to end: {share:.3f} of 200 unkeyed requests answered by the canary (target 0.100)")
    assert set(drawn) == {"1", "3"} and 0.03 <= share <= 0.20  # 3.3 sigma of a 10% draw over 200 is +-7 points


def test_grpc_routes_by_the_same_rollout(rollout_server: tuple[Server, int, Path]) -> None:
    import tritonclient.grpc as grpcclient

    _, grpc_port, _ = rollout_server
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    tensor = grpcclient.InferInput("input", list(ROWS.shape), "FP64")
    tensor.set_data_from_numpy(ROWS.astype(np.float64))
    for key, version in ((_canary_key(), "3"), (_champion_key(), "1")):
        result = client.infer("petal", [tensor], headers={"x-canary-key": key})
        assert result.get_response().model_version == version
    client.close()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_shadow_listens_and_only_the_champions_answer_returns(rollout_server: tuple[Server, int, Path]) -> None:
    srv, _, logs = rollout_server
    rows = load_iris().data[::3]  # 50 rows, all three classes: the depth-1 tree gets a third of them wrong
    with httpx.Client(timeout=30) as client:
        before = client.get(f"{srv.url}/metrics").text
        answers = [client.post(f"{srv.url}/v2/models/petal/infer", json=_body(rows),
                               headers={"X-Canary-Key": _champion_key()}).json() for _ in range(10)]
        deadline = time.monotonic() + 10
        while True:
            after = client.get(f"{srv.url}/metrics").text
            answered = _metric(after, "gravityml_shadow_requests_total", version="2", outcome="answered") - \
                _metric(before, "gravityml_shadow_requests_total", version="2", outcome="answered")
            if answered >= 10 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert {a["model_version"] for a in answers} == {"1"}
    labels = {tuple(o["data"]) for a in answers for o in a["outputs"] if o["name"] == "prediction"}
    assert len(labels) == 1  # every answer is the champion's
    assert answered >= 10
    disagree = _metric(after, "gravityml_shadow_disagreements_total", model="petal", version="2") - \
        _metric(before, "gravityml_shadow_disagreements_total", model="petal", version="2")
    assert disagree >= 10 * 10, after  # the tree disagrees on a third of the rows
    assert _metric(after, "gravityml_model_version_requests_total", model="petal", version="1", code="200") >= 10
    assert re.search(r'gravityml_model_version_request_duration_seconds_count\{model="petal",version="1"\}', after)


def test_metrics_have_series_per_version(rollout_server: tuple[Server, int, Path]) -> None:
    srv, _, _ = rollout_server
    with httpx.Client(timeout=30) as client:
        for key in (_canary_key(), _champion_key()):
            assert client.post(f"{srv.url}/v2/models/petal/infer", json=_body(), headers={"X-Canary-Key": key}).status_code == 200
        bad = client.post(f"{srv.url}/v2/models/petal/infer", json={"inputs": [{"name": "input", "shape": [1, 2],
                          "datatype": "FP64", "data": [1, 2]}]}, headers={"X-Canary-Key": _canary_key()})
        text = client.get(f"{srv.url}/metrics").text
    assert bad.status_code == 400
    for version in ("1", "3"):
        assert _metric(text, "gravityml_model_version_requests_total", model="petal", version=version, code="200") >= 1
        assert _metric(text, "gravityml_model_version_request_duration_seconds_count", model="petal", version=version) >= 1
    assert _metric(text, "gravityml_model_version_errors_total", model="petal", version="3") >= 1
    assert 'gravityml_inference_pending_requests{model="petal",version="2"}' in text  # the shadow is served


# ---- following an alias under load ---------------------------------------------------------------

def test_follow_aliases_swaps_under_load_with_zero_failed_requests(rollout_server: tuple[Server, int, Path],
                                                                    petal: Path) -> None:
    from gravityml.tracking import Workspace, promote

    srv, _, _ = rollout_server
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                response = client.post(f"{srv.url}/v2/models/sepal/infer", json=_body())
                answers.append((response.status_code, response.json().get("model_version", "")))

    clients = [threading.Thread(target=traffic) for _ in range(4)]
    try:
        for c in clients:
            c.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(answers) < 20:  # traffic flowing before the alias moves
            time.sleep(0.05)
        with workspace_env(petal):
            promote(Workspace.current(petal), "sepal/2", "staging")
        # The swap, then the old version's drain, all under traffic: until 20 answers came from the new one.
        while time.monotonic() < deadline and sum(v == "2" for _, v in answers) < 20:
            time.sleep(0.05)
    finally:
        stop.set()
        for c in clients:
            c.join()
    index = httpx.post(f"{srv.url}/v2/repository/index", timeout=10).json()
    codes = [code for code, _ in answers]
    versions = [v for _, v in answers]
    print(f"follow-aliases swap: {len(answers)} requests from 4 clients, {codes.count(200)} answered 200")
    assert codes and set(codes) == {200}, [a for a in answers if a[0] != 200][:5]
    assert versions[0] == "1" and versions[-1] == "2"
    assert [m["version"] for m in index if m["name"] == "sepal"] == ["2"]  # version 1 drained and unloaded
    assert "now serving sepal version 2" in srv.output()


def test_the_prediction_log_holds_both_answers_with_their_versions(rollout_server: tuple[Server, int, Path]) -> None:
    import pandas as pd

    srv, _, logs = rollout_server
    with httpx.Client(timeout=30) as client:
        assert client.post(f"{srv.url}/v2/models/petal/infer", json=_body(),
                           headers={"X-Canary-Key": _champion_key()}).status_code == 200
    time.sleep(0.5)  # the shadow's copy is answered after the champion's
    srv.stop()  # the last test of this server: stopping closes the log's open file
    frame = pd.concat([pd.read_parquet(f) for f in sorted(logs.glob("*.parquet"))], ignore_index=True)
    assert {"petal/1", "petal/2"} <= set(frame["_gml_model_version"])  # the champion's answer and the shadow's
