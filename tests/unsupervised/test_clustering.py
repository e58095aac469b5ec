"""Clustering: k-means on iris (label only for evaluation), the cluster-count search, the other
clusterers' predict / save / load, and cluster quality without labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.metrics import adjusted_rand_score

import gravityml
from gravityml.errors import GravityMLError, SpecError, TrainingError
from gravityml.execution import run_job
from gravityml.models import load_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IRIS = load_iris(as_frame=True)


def test_kmeans_on_iris_finds_the_species_without_seeing_them(workspace) -> None:
    result = run_job(EXAMPLES / "iris_kmeans.yaml")
    metrics = result.metrics
    assert metrics["test/ari"] >= 0.6 and metrics["train/ari"] >= 0.6
    assert 0.0 < metrics["test/nmi"] <= 1.0
    # quality without labels is reported too (silhouette in [-1, 1], DB >= 0, CH > 0)
    assert -1 <= metrics["train/silhouette"] <= 1 and metrics["train/davies_bouldin"] > 0
    assert metrics["train/calinski_harabasz"] > 0

    model = gravityml.load(result.model_ref)
    assert model.kind == "clusterer" and "target" not in model.schema.feature_names
    out = model.predict(IRIS.data)
    assert set(out["prediction"]) == {0, 1, 2}
    assert out["confidence"].between(0, 1).all()
    # the ARI recomputed from what predict says agrees with the species well beyond chance
    assert adjusted_rand_score(IRIS.target, out["prediction"]) >= 0.6
    proba = model.predict_proba(IRIS.data.head(5))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_auto_cluster_count_picks_two_or_three_and_saves_the_curve(workspace, tmp_path) -> None:
    result = run_job(EXAMPLES / "iris_kmeans_auto.yaml")
    chosen = result.metrics["search/chosen_n_clusters"]
    assert chosen in (2, 3)
    assert gravityml.load(result.model_ref).meta["n_clusters"] == chosen
    plots = [a.path for a in workspace.client.list_artifacts(result.run_id, "plots")]
    assert "plots/cluster_count.png" in plots and "plots/projection.png" in plots
    # the curve holds one silhouette per candidate count, 2..8, and the chosen count is its best
    local = workspace.client.download_artifacts(result.run_id, "reports/cluster_count.json", str(tmp_path))
    saved = json.loads(Path(local).read_text())
    assert sorted(int(k) for k in saved["curve"]) == list(range(2, 9))
    assert saved["chosen"] == chosen and saved["curve"][str(int(chosen))] == max(saved["curve"].values())
    assert result.metrics["search/best_silhouette"] == pytest.approx(max(saved["curve"].values()))


@pytest.mark.parametrize(
    ("model_type", "params"),
    [
        ("gaussian_mixture", {"n_components": "auto", "n_clusters_range": [2, 4]}),
        ("dbscan", {"eps": 0.8}),
        ("hdbscan", {"min_cluster_size": 10}),
        ("agglomerative", {"n_clusters": 3}),
        ("kmeans", {"n_clusters": 3, "mini_batch": True}),
    ],
)
def test_each_clusterer_places_new_rows_and_survives_save_and_load(fit, tmp_path, model_type, params) -> None:
    result = fit(model_type, params)
    assert result.model.kind == "clusterer"
    assert result.metrics["train/n_clusters"] >= 2
    assert result.metrics["train/ari"] > 0.3  # far better than chance (0) on iris
    loaded = load_model(result.model.save(tmp_path / "m"))
    before, after = result.model.predict(IRIS.data), loaded.predict(IRIS.data)
    pd.testing.assert_frame_equal(before, after)
    assert after["confidence"].between(0, 1).all()
    with pytest.raises(GravityMLError, match="lacks column"):
        loaded.predict(pd.DataFrame({"petal width (cm)": [1.0]}))


def test_density_clusterers_keep_noise_as_minus_one(fit) -> None:
    result = fit("dbscan", {"eps": 0.3, "min_samples": 10})
    assert result.metrics["train/noise_share"] > 0
    far_away = pd.DataFrame([[50.0, 50.0, 50.0, 50.0]], columns=IRIS.data.columns)
    # a row far from every cluster takes the vote of its nearest training rows, which exist, so
    # it gets *some* id; the ids are those of training (noise included)
    assert result.model.predict(far_away)["prediction"].iloc[0] in set(range(-1, 10))


def test_pca_gives_components_a_confidence_and_a_projection(fit) -> None:
    result = fit("pca", {"n_components": 2})
    out = result.model.predict(IRIS.data)
    assert {"component_1", "component_2", "confidence"} <= set(out.columns)
    assert out["confidence"].between(0, 1).all()
    assert result.metrics["train/explained_variance"] > 0.9  # iris is nearly two-dimensional
    assert any(p.name == "projection.png" and p.stat().st_size > 0 for p in result.artifacts)


def test_bad_params_are_refused_with_the_fix(fit) -> None:
    with pytest.raises(SpecError, match="'n_cluster' is not a parameter of kmeans \\(KMeans, MiniBatchKMeans\\).*did you mean 'n_clusters'"):
        fit("kmeans", {"n_cluster": 3})
    with pytest.raises(TrainingError, match="n_clusters_range"):
        fit("kmeans", {"n_clusters": "auto", "n_clusters_range": [1]})
    with pytest.raises(TrainingError, match="scale"):
        fit("kmeans", {"scale": "minmax"})
