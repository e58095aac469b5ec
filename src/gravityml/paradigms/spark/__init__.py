"""Training ``pyspark.ml`` Pipelines where the data lives (a Spark session on the site's cluster)."""

from gravityml.paradigms.spark._train import SPARK_ESTIMATORS, build_pipeline, stratified_split, train, train_spark

__all__ = ["SPARK_ESTIMATORS", "build_pipeline", "stratified_split", "train", "train_spark"]
