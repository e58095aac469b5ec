"""The spark flavor: a fitted ``pyspark.ml`` PipelineModel saved in Spark's own folder format.

Loading and predicting start a local Spark session (``local[1]``, UI off) the first time they are
needed, so scoring a few rows here costs a JVM start-up (seconds) and each call a Spark job (tens of
milliseconds or more): latency is higher than the scikit-learn flavor's. Batch scoring over a table
belongs on the cluster; online serving goes through ONNX where the pipeline converts (onnxmltools'
Spark ML converter, :meth:`SparkModel.export_onnx`). pyspark is imported only when a model of this flavor is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gravityml.errors import ModelError
from gravityml.models._base import GravityModel, ModelKind
from gravityml.schema import Schema

PAYLOAD = "spark_pipeline"
#: Fitted estimators whose ONNX graph (onnxmltools' Spark ML converter) scores as Spark does (tests/spark).
_ONNX_ESTIMATORS = frozenset({"LogisticRegressionModel", "LinearRegressionModel"})


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

    def export_onnx(self, path: Path, sample: pd.DataFrame) -> dict[str, Any]:
        """The pipeline (the target's indexer left out) as ONNX, by onnxmltools' Spark ML converter.

        Each feature column is one graph input (``FP32``; ``STRING`` for a text column), and the graph
        holds the indexing, one-hot encoding and assembling; classifiers give ``probabilities`` in the
        order of ``meta["labels"]``. The converter needs a Spark session (a local one is started).
        """
        if self.kind not in ("classifier", "regressor"):
            raise ModelError(f"a Spark {self.kind} cannot be exported to ONNX yet", allowed=["classifier", "regressor"],
                             got=self.kind, fix="serve it with its native runtime (gravityml serve REF)")
        estimator = type(self.pipeline.stages[-1]).__name__
        if estimator not in _ONNX_ESTIMATORS:
            raise ModelError(
                f"a Spark {estimator} does not export to ONNX yet: onnxmltools' converter for it was not found to "
                "score as Spark does (a 5-tree random forest: 97.5% of 200 labels equal)",
                allowed=sorted(_ONNX_ESTIMATORS), got=estimator,
                fix="serve it with its native runtime (gravityml serve REF: a local Spark session), or train "
                    "spark_logistic_regression / spark_linear_regression")
        try:
            from onnxmltools import convert_sparkml
            from onnxmltools.convert.common.data_types import FloatTensorType, StringTensorType
        except ImportError as exc:
            raise ModelError("ONNX export of a Spark pipeline needs onnxmltools", allowed="onnxmltools installed",
                             got=str(exc), fix="pip install onnxmltools") from None
        import contextlib
        import io

        from pyspark.ml import PipelineModel

        target = self.schema.target
        stages = [s for s in self.pipeline.stages
                  if not (target and s.hasParam("inputCol") and s.isDefined(s.getParam("inputCol"))
                          and s.getInputCol() == target)]
        text = {c.name for c in self.schema.features if c.kind in ("categorical", "text")}
        types = [(c.name, StringTensorType([None, 1]) if c.name in text else FloatTensorType([None, 1]))
                 for c in self.schema.features]
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the converter prints each node's attributes
                onx = convert_sparkml(PipelineModel(stages=stages), f"gravityml-{self.meta.get('model_type', 'spark')}",
                                      types, spark_session=local_session(), target_opset=15)
        except Exception as exc:  # the converter raises many types; each means "a stage does not convert"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ModelError(f"the Spark pipeline could not be converted to ONNX: {first}",
                             allowed=[type(s).__name__ for s in stages], got=type(exc).__name__,
                             fix="serve it with its native runtime (gravityml serve REF: a local Spark session)"
                             ) from None
        path.write_bytes(onx.SerializeToString())
        names = [o.name for o in onx.graph.output]
        outputs = ({"probabilities": "probability"} if self.kind == "classifier" and "probability" in names
                   else {"prediction": "prediction"})
        inputs = [{"name": i.name, "columns": [i.name], "datatype": "STRING" if i.name in text else "FP32",
                   "shape": [-1, 1]} for i in onx.graph.input]
        return {"inputs": inputs, "outputs": outputs,
                "preprocessing": {"in_graph": True, "steps": [type(s).__name__ for s in stages]},
                "opset": {o.domain: o.version for o in onx.opset_import}}

    def _save_payload(self, path: Path) -> None:
        self.pipeline.write().overwrite().save(str(path / PAYLOAD))

    @classmethod
    def _load_payload(cls, path: Path, *, kind: ModelKind, schema: Schema, meta: dict[str, Any]) -> SparkModel:
        from pyspark.ml import PipelineModel

        local_session()
        return cls(PipelineModel.load(str(path / PAYLOAD)), kind=kind, schema=schema, meta=meta)
