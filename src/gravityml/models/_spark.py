"""The spark flavor: a fitted ``pyspark.ml`` PipelineModel saved in Spark's own folder format.

Loading and predicting start a local Spark session (``local[1]``, UI off) the first time they are
needed, so scoring a few rows here costs a JVM start-up (seconds) and each call a Spark job (tens of
milliseconds or more): latency is higher than the scikit-learn flavor's. Batch scoring over a table
belongs on the cluster. pyspark is imported only when a model of this flavor is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml.models._base import GravityModel, ModelKind
from gravityml.schema import Schema

PAYLOAD = "spark_pipeline"


def local_session(master: str = "local[1]", app: str = "gravityml") -> Any:
    """A Spark session with the UI off and few shuffle partitions (the one this process has, if any).

    Its Python workers (``mapInArrow``, ``mapInPandas``) run this interpreter unless PYSPARK_PYTHON says otherwise."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    return (
        SparkSession.builder.master(master).appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )


class SparkModel(GravityModel):
    """A PipelineModel whose last stage writes ``prediction`` (and ``probability`` for classifiers).

    ``meta["labels"]`` holds the class labels in the order of the probability vector (the target's
    StringIndexer order); confidence is the probability of the predicted class.
    """

    flavor = "spark"

    def __init__(self, pipeline: Any, *, kind: ModelKind, schema: Schema, meta: dict[str, Any] | None = None) -> None:
        super().__init__(kind=kind, schema=schema, meta=meta)
        self.pipeline = pipeline

    def transform(self, frame: Any) -> Any:
        """The pipeline's output over a Spark DataFrame (on whatever cluster holds it)."""
        return self.pipeline.transform(frame)

    def _scored(self, frame: pd.DataFrame) -> pd.DataFrame:
        spark = local_session()
        out = self.transform(spark.createDataFrame(frame.reset_index(drop=True)))
        cols = ["prediction"] + (["probability"] if self.kind in ("classifier", "clusterer") and "probability" in out.columns else [])
        return out.select(*cols).toPandas()

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        scored = self._scored(frame)
        if self.kind == "classifier":
            proba = np.vstack([np.asarray(v.toArray()) for v in scored["probability"]])
            labels = np.asarray(self.meta["labels"], dtype=object)
            best = np.argmax(proba, axis=1)
            return pd.DataFrame({"prediction": labels[best], "confidence": proba[np.arange(len(best)), best]}, index=frame.index)
        if self.kind == "clusterer":
            out = pd.DataFrame({"prediction": scored["prediction"].astype("int64").to_numpy()}, index=frame.index)
            if "probability" in scored:
                out["confidence"] = [float(np.max(v.toArray())) for v in scored["probability"]]
            return out
        return pd.DataFrame({"prediction": scored["prediction"].astype("float64").to_numpy()}, index=frame.index)

    def _predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.kind != "classifier":
            return super()._predict_proba(frame)
        scored = self._scored(frame)
        proba = np.vstack([np.asarray(v.toArray()) for v in scored["probability"]])
        return pd.DataFrame(proba, columns=[str(c) for c in self.meta["labels"]], index=frame.index)

    def _save_payload(self, path: Path) -> None:
        self.pipeline.write().overwrite().save(str(path / PAYLOAD))

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> SparkModel:
        from pyspark.ml import PipelineModel

        local_session()
        return cls(PipelineModel.load(str(path / PAYLOAD)), kind=kind, schema=schema, meta=meta)
