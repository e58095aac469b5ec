"""Kinds other than classifiers go through the same server code: a clusterer and an anomaly detector."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from tests.inference.conftest import workspace_env, write_job


@pytest.fixture(scope="module")
def unsupervised(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gravityml

    jobs = tmp_path_factory.mktemp("unsupervised-jobs")
    with workspace_env(trained):
        for name, model in (("iris-clusters", {"type": "kmeans", "params": {"n_clusters": 3}}),
                            ("iris-outliers", {"type": "isolation_forest", "params": {"n_estimators": 50}})):
            gravityml.train(write_job(jobs / f"{name}.yaml", name=name, task="unsupervised",
                                      data={"source": "sklearn:iris", "target": "target"}, model=model,
                                      compute={"accelerator": "cpu"}))
    return trained


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.request(method, path, **kwargs)
    return asyncio.run(go())


def test_clusterer_and_anomaly_detector_are_served_by_their_predict_columns(unsupervised: Path) -> None:
    from gravityml.inference import create_app
    from gravityml.inference._repository import load_for_serving

    with workspace_env(unsupervised):
        models = [load_for_serving("iris-clusters"), load_for_serving("iris-outliers")]
    app = create_app(models)
    rows = load_iris().data[[0, 60, 120]]
    body = {"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP64", "data": rows.tolist()}]}

    meta = call(app, "GET", "/v2/models/iris-outliers").json()
    assert {"score", "is_anomaly"} <= {o["name"] for o in meta["outputs"]}
    assert meta["parameters"]["kind"] == "anomaly_detector"
    outliers = {o["name"]: o for o in call(app, "POST", "/v2/models/iris-outliers/infer", json=body).json()["outputs"]}
    assert outliers["is_anomaly"]["datatype"] == "BOOL" and len(outliers["score"]["data"]) == 3

    clusters = {o["name"]: o for o in call(app, "POST", "/v2/models/iris-clusters/infer", json=body).json()["outputs"]}
    assert len(set(clusters["prediction"]["data"])) == 3  # one flower of each species, three clusters
    assert all(0 < c <= 1 for c in clusters["confidence"]["data"])
    refused = call(app, "POST", "/v2/models/iris-clusters/infer", json={**body, "parameters": {"probabilities": True}})
    assert refused.status_code == 400 and "no class probabilities" in refused.json()["error"]
    assert np.isfinite(outliers["score"]["data"]).all()
