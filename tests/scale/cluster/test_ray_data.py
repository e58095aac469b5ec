"""Batch scoring with Ray Data on the session's two-node cluster (issue 13, point 3).

`gravityml predict REF s3://.../in/ -o s3://.../out/ --site ray-site` runs a Ray job on the site's
cluster: files read by Ray Data tasks, scored by an actor pool holding the model, written under a
temporary prefix and published with `_SUCCESS` last, or not at all.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

BUCKET = "scale-data"
FILES, ROWS = 20, 5  # 20 small Parquet files, 100 rows in all


def _rows(start: int, count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=count), rng.normal(size=count)
    return pd.DataFrame({"id": np.arange(start, start + count), "x1": x1, "x2": x2})


@pytest.fixture(scope="module")
def model(scale_cluster, tmp_path_factory: pytest.TempPathFactory) -> str:  # type: ignore[no-untyped-def]
    """A logistic regression trained here and registered in the cluster's MLflow server: its NAME/VERSION."""
    from gravityml.data import local_catalog
    from gravityml.execution import run_job
    from gravityml.tracking import Workspace

    root = tmp_path_factory.mktemp("raydata-model")
    frame = _rows(0, 200, seed=1).drop(columns=["id"])
    frame["target"] = np.where(frame["x1"] + 0.5 * frame["x2"] > 0, "yes", "no")
    frame.to_csv(root / "train.csv", index=False)
    spec = {"name": "scorer", "task": "supervised",
            "data": {"source": str(root / "train.csv"), "target": "target", "split": {"test": 0.25, "seed": 3}},
            "model": {"type": "logistic_regression"}, "compute": {"accelerator": "cpu"}}
    (root / "scorer.yaml").write_text(yaml.safe_dump(spec))
    ws = Workspace(root=root / "ws", tracking_uri=scale_cluster.tracking_uri, embedded=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAVITYML_HOME", str(root / "ws"))
        result = run_job(root / "scorer.yaml", workspace=ws, catalog=local_catalog())
    return str(result.model_ref)


def _local_scores(model: str, tracking_uri: str, frame: pd.DataFrame) -> pd.DataFrame:
    """What single-process scoring gives for ``frame`` (the same code `gravityml predict` runs)."""
    from gravityml.inference import load, score_frame
    from gravityml.tracking import Workspace

    ws = Workspace.current()
    return score_frame(load(model, workspace=Workspace(root=ws.root, tracking_uri=tracking_uri, embedded=False)),
                       frame)


def _keys(s3, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _put_parquet(s3, key: str, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())


def test_twenty_parquet_files_in_the_sites_store_are_scored_once_each_over_both_raylets(
    scale_env, model: str, cli,
) -> None:
    s3 = scale_env.s3()
    frames = [_rows(i * ROWS, ROWS, seed=100 + i) for i in range(FILES)]
    for i, frame in enumerate(frames):
        _put_parquet(s3, f"in/part-{i:02d}.parquet", frame)
    code, out, err = cli("predict", model, f"s3://{BUCKET}/in/", "-o", f"s3://{BUCKET}/out/", "--site",
                         scale_env.site, "--catalog", str(scale_env.catalog), "--concurrency", "2")
    assert code == 0, err[-3000:]
    assert f"scored {FILES * ROWS} rows of {FILES} files" in out
    keys = _keys(s3, "out/")
    assert keys[-1] == "out/_SUCCESS" and not [k for k in keys if "_tmp-" in k]
    scored = pd.concat([pd.read_parquet(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()))
                        for k in keys if k.endswith(".parquet")], ignore_index=True)
    # Every row exactly once, its id kept; the columns and values of single-process scoring.
    assert len(scored) == FILES * ROWS and sorted(scored["id"]) == list(range(FILES * ROWS))
    assert list(scored.columns) == ["id", "x1", "x2", "prediction", "confidence"]
    expected = _local_scores(model, scale_env.tracking_uri, pd.concat(frames, ignore_index=True))
    merged = scored.merge(expected, on="id", suffixes=("", "_local"))
    assert (merged["prediction"] == merged["prediction_local"]).all()
    assert np.allclose(merged["confidence"], merged["confidence_local"])
    assert scored["confidence"].between(0.5, 1).all()
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="out/_SUCCESS")["Body"].read())
    assert summary["rows"] == FILES * ROWS and summary["model"] == model
    # The actors that scored ran on both raylets (node ids they recorded), and their counts add up.
    assert sum(summary["rows_by_node"].values()) == FILES * ROWS
    assert len(summary["rows_by_node"]) == 2, summary["rows_by_node"]
    # The batch job is in the workspace's jobs, as a train job is: kind, state, what it scored with.
    import re

    job_id = re.search(r"submitted (gravityml-predict-[0-9a-f]{8})", out + err).group(1)  # type: ignore[union-attr]
    code, listed, _ = cli("jobs", "list")
    (row,) = [line for line in listed.splitlines() if job_id in line]
    assert code == 0 and "predict" in row and "SUCCEEDED" in row and f"-> s3://{BUCKET}/out/" in row, row
    code, status, _ = cli("jobs", "status", job_id)
    assert code == 0 and "SUCCEEDED" in status and f"scores   {model}" in status


def test_a_corrupt_input_file_fails_the_job_publishes_nothing_and_names_the_file(scale_env, model: str, cli) -> None:
    s3 = scale_env.s3()
    for i in range(4):
        _put_parquet(s3, f"bad-in/part-{i:02d}.parquet", _rows(i * ROWS, ROWS, seed=i))
    s3.put_object(Bucket=BUCKET, Key="bad-in/part-02.parquet", Body=b"PAR1 this is not a parquet file")
    code, out, err = cli("predict", model, f"s3://{BUCKET}/bad-in/", "-o", f"s3://{BUCKET}/bad-out/", "--site",
                         scale_env.site, "--catalog", str(scale_env.catalog), "--concurrency", "1")
    assert code == 2, out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "published nothing" in line, err[-2000:]
    assert f"s3://{BUCKET}/bad-in/part-02.parquet" in line and "could not be read as parquet" in line
    assert _keys(s3, "bad-out/") == []  # no _SUCCESS, no scored file, no temporary prefix left


def test_a_local_folder_of_parquet_and_csv_files_is_scored_and_a_bad_row_is_named(
    scale_env, model: str, cli, tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _rows(0, 6, seed=7).to_parquet(folder / "a.parquet", index=False)
    _rows(6, 4, seed=8).to_csv(folder / "b.csv", index=False)
    (folder / "notes.txt").write_text("not rows")  # not a file of rows: left alone
    out = tmp_path / "out"
    code, stdout, err = cli("predict", model, str(folder), "-o", str(out), "--site", scale_env.site,
                            "--catalog", str(scale_env.catalog), "--concurrency", "1")
    assert code == 0, err[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert names[-1] == "_SUCCESS" and all(n.endswith(".parquet") for n in names[:-1])
    scored = pd.concat([pd.read_parquet(p) for p in out.glob("*.parquet")], ignore_index=True)
    assert sorted(scored["id"]) == list(range(10)) and scored["prediction"].isin(["yes", "no"]).all()

    bad = _rows(20, 5, seed=9).astype({"x2": object})
    bad.loc[3, "x2"] = "abc"  # row 4 of the file, as a person counts it
    bad.to_csv(folder / "c.csv", index=False)
    failed = tmp_path / "failed"
    code, _, err = cli("predict", model, str(folder), "-o", str(failed), "--site", scale_env.site,
                       "--catalog", str(scale_env.catalog), "--concurrency", "1")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert str(folder / "c.csv") in line and "column 'x2', row 4: 'abc' is not a number" in line, err[-2000:]
    assert not failed.exists() or list(failed.iterdir()) == []
