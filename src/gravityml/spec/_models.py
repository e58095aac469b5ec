"""The job spec: one YAML document describes any job, for all four kinds of learning.

Constraints live here, as data, and are checked once when a job is loaded; code further down trusts
a validated spec (the pattern of scikit-learn's ``_parameter_constraints``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from gravityml.errors import SpecError
from gravityml.spec._catalog import MODEL_TYPES, model_types_for
from gravityml.spec._params import check_model_params, did_you_mean, load_entry_point, model_param_names
from gravityml.spec._tune import TuneSpec

Task = Literal["supervised", "unsupervised", "semi_supervised", "reinforcement"]
Accelerator = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp64", "fp32", "bf16", "fp16", "auto"]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$"


class StrictModel(BaseModel):
    """Unknown keys are errors; values are not coerced silently between unrelated types."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SplitSpec(StrictModel):
    """How rows are divided between training, validation and test."""

    test: float = Field(0.2, gt=0.0, lt=1.0, description="Fraction of rows held out for test.")
    validation: float = Field(
        0.0, ge=0.0, lt=1.0, description="Fraction of the training rows kept for validation."
    )
    seed: int = Field(7, description="Seed of the split; the same seed gives the same rows.")
    stratify: bool | None = Field(
        None, description="Keep class proportions in each part (default: yes for classification)."
    )


class ImagesSpec(StrictModel):
    """An image-folder source (one sub-folder per class): the size and colour mode rows get."""

    size: list[int] | None = Field(
        None, min_length=2, max_length=2, description="[height, width] (default: the first image's)."
    )
    mode: Literal["L", "RGB"] | None = Field(None, description="L (grey) or RGB (default: the first image's).")


class DataSpec(StrictModel):
    """Where the rows come from and which column is the target."""

    source: str = Field(
        ...,
        description="A path, file:// or s3:// URI, sklearn:NAME, or a dataset name from the catalog.",
    )
    target: str | None = Field(
        None, description="Target column (unsupervised: optional, used only to evaluate)."
    )
    features: list[str] | None = Field(
        None, description="Feature columns to use (default: every column but the target)."
    )
    drop: list[str] = Field(default_factory=list, description="Columns to ignore.")
    problem: Literal["auto", "classification", "regression"] = Field(
        "auto", description="Supervised problem kind; auto infers it from the target column."
    )
    text: str | None = Field(None, description="A column of free text (for text models).")
    images: ImagesSpec | None = Field(None, description="How an image folder source is read.")
    header: bool = Field(True, description="Whether a CSV/TSV source starts with a header row (false: name "
                         "the columns in data.columns).")
    columns: list[str] | None = Field(None, description="Column names of a CSV/TSV source without a header row.")
    split: SplitSpec = Field(default_factory=SplitSpec)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _columns_name_a_headerless_file(self) -> DataSpec:
        if not self.header and not self.columns:
            raise SpecError(
                "data.columns", "a CSV without a header row needs its column names",
                allowed="a list of names, one per column", got=self.columns,
                fix="add data.columns: [name1, name2, ...] (in the file's order)",
            )
        if self.header and self.columns:
            raise SpecError(
                "data.columns", "names columns of a file that has a header row",
                allowed="data.columns only with data.header: false", got=self.columns,
                fix="remove data.columns, or set data.header: false if the file has no header row",
            )
        repeated = sorted({c for c in self.columns or [] if (self.columns or []).count(c) > 1})
        if repeated:
            raise SpecError(
                "data.columns", "names a column twice", allowed="each name once", got=repeated,
                fix="give every column its own name",
            )
        return self


class EnvSpec(StrictModel):
    """A Gymnasium environment, by registered id or by the entry point of a user's class."""

    id: str | None = Field(None, description="A registered Gymnasium id, e.g. CartPole-v1.")
    entry_point: str | None = Field(None, description="'package.module:Class' of your own env.")
    n_envs: int = Field(1, ge=1, le=256, description="Vectorised copies of the environment.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Arguments for the env.")

    @model_validator(mode="after")
    def _one_source(self) -> EnvSpec:
        if (self.id is None) == (self.entry_point is None):
            raise SpecError(
                "env",
                "name exactly one of 'id' or 'entry_point'",
                allowed=["id", "entry_point"],
                got={k: v for k, v in (("id", self.id), ("entry_point", self.entry_point)) if v},
                fix="write env: {id: CartPole-v1} or env: {entry_point: 'my_pkg.envs:MyEnv'}",
            )
        return self


class ModelSpec(StrictModel):
    """Which model to train. ``params`` are checked against the type's parameter schema on load."""

    type: str = Field(..., description="A model type; `gravityml validate` lists them.")
    entry_point: str | None = Field(
        None,
        description="type sklearn: 'module:Estimator' or a factory returning an estimator or Pipeline; "
        "type torch: 'module:build', called as build(inputs, outputs, **params) and returning an nn.Module.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The model type's parameters.")
    framework: Literal["torch", "tensorflow"] = Field(
        "torch", description="The built-in networks (mlp, cnn, text): torch, or tensorflow (Keras 3, the tensorflow extra)."
    )
    loss: str | None = Field(
        None, description="type torch: cross_entropy | mse | l1 | huber, or 'module:callable' (default by problem)."
    )
    optimizer: str | None = Field(
        None, description="type torch: adamw | adam | sgd, or 'module:callable(params, lr)' (default adamw)."
    )


class TrainSpec(StrictModel):
    """The training loop's settings (deep learning and reinforcement use most of them)."""

    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(128, ge=1, le=1_000_000)
    lr: float = Field(1.0e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0)
    seed: int = Field(7, description="Seed of every random number generator the job uses.")
    timesteps: int | None = Field(None, ge=1, description="Reinforcement: environment steps.")
    eval_freq: int | None = Field(
        None, ge=1, description="Reinforcement: steps between evaluations (default: timesteps / 20)."
    )
    eval_episodes: int = Field(10, ge=1, le=10_000, description="Reinforcement: episodes per evaluation.")
    target_reward: float | None = Field(
        None, description="Reinforcement: stop once the mean evaluation return reaches this."
    )
    checkpoint_freq: int | None = Field(
        None, ge=1, description="Reinforcement: steps between checkpoints (default: eval_freq)."
    )
    patience: int | None = Field(
        None, ge=1, description="Early stopping: epochs without improvement before stopping."
    )
    grad_clip: float | None = Field(None, gt=0.0, description="Clip the gradient norm to this.")
    lr_schedule: Literal["constant", "cosine", "step", "plateau"] = "constant"
    class_weight: Literal["none", "balanced"] = "none"
    calibrate: Literal["none", "sigmoid", "isotonic", "temperature"] = Field(
        "none",
        description="Classifiers: fit probabilities on validation rows (data.split.validation, else 10% of the"
        " training rows): sigmoid or isotonic for scikit-learn models, temperature for torch networks.",
    )


class ComputeSpec(StrictModel):
    """Hardware and numeric precision. The model never names a device: this section does."""

    accelerator: Accelerator = "auto"
    devices: int = Field(1, ge=1, le=1024)
    precision: Precision = "fp32"
    threads: int | None = Field(None, ge=1, description="CPU threads (default: all cores).")
    workers: int = Field(
        1, ge=1, le=1024,
        description="Ray Train workers (a job on a Ray site): each runs the training loop on its shard of the "
        "rows with `devices` devices; 1: one process (or `devices` DDP processes) with no Ray.",
    )
    max_failures: int = Field(
        0, ge=-1, le=1000,
        description="Ray Train: worker failures survived by restarting from the last checkpoint (-1: no limit).",
    )


class EstimateSpec(StrictModel):
    """How long the job takes on known hardware (instead of a measured calibration run)."""

    hours: float = Field(..., gt=0.0, description="Wall-clock hours of one run on `devices` x `hardware`.")
    hardware: str = Field("this-machine", description="A row of the hardware table (a100, h100, cpu, ...).")
    devices: int = Field(1, ge=1, le=1024)


class PlacementSpec(StrictModel):
    """Where the job may run and what it may cost (see `gravityml plan`)."""

    objective: Literal["cost", "time"] = "cost"
    budget_usd: float | None = Field(None, gt=0.0)
    deadline_hours: float | None = Field(None, gt=0.0)
    site: str | None = Field(None, description="Pin the job to one site of the catalog.")
    estimate: EstimateSpec | None = Field(None, description="Default: a short measured calibration run.")
    spot: bool = Field(False, description="Also consider interruptible (spot) cloud prices.")
    runs_per_year: float | None = Field(None, gt=0.0, description="How often the job runs (buy-vs-rent).")


class MonitorSpec(StrictModel):
    """When `gravityml monitor` calls recent data drifted (flags override these)."""

    alpha: float = Field(0.01, gt=0.0, lt=1.0, description="Family-wise significance of the drift tests (KS, chi-squared).")
    psi: float = Field(0.2, ge=0.0, description="Population stability index a drifted column must reach as well.")
    max_drifted_features: int = Field(0, ge=0, description="Drifted features allowed before the check fails.")
    missing_rate: float = Field(0.1, ge=0.0, le=1.0, description="Rise of a column's missing rate counted as a violation.")
    metric_drop: float = Field(0.05, ge=0.0, description="Drop of a test metric (labelled rows) that fails the check.")
    prediction_drift: bool = Field(True, description="Drift of predictions or confidence fails the check.")


class RetrainWhenSpec(StrictModel):
    """What makes `gravityml lifecycle run` retrain (any one of them)."""

    drift: bool = Field(True, description="The monitor check failed (drift, violations or a metric drop).")
    age_days: float | None = Field(None, gt=0.0, description="The serving version is older than this.")


class PromoteSpec(StrictModel):
    """The champion/challenger rule: promote only when better beyond the margin with confidence."""

    alias: str = Field("production", description="The alias the champion holds.")
    metric: str | None = Field(None, description="Metric to decide on (default: accuracy, or rmse for regressors).")
    margin: float = Field(0.0, ge=0.0, description="How much better the challenger must be (in the metric's units).")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Level of the bootstrap interval of the difference.")


class LifecycleSpec(StrictModel):
    """How `gravityml lifecycle run NAME` keeps the model up to date: monitor, retrain, evaluate, promote."""

    recent: str | None = Field(None, description="Recent rows to monitor (file, folder or s3:// URI).")
    logs: str | None = Field(None, description="Or a prediction-log folder to monitor.")
    data: str | None = Field(None, description="Rows to retrain on (default: the recorded data.source).")
    holdout: str = Field(..., description="Labelled rows both versions are scored on before a promotion.")
    retrain_when: RetrainWhenSpec = Field(default_factory=RetrainWhenSpec)  # type: ignore[arg-type]
    promote: PromoteSpec = Field(default_factory=PromoteSpec)  # type: ignore[arg-type]


class JobSpec(StrictModel):
    """A whole job. Load one with :func:`gravityml.spec.load_spec`."""

    name: str = Field(..., pattern=NAME_PATTERN, description="Registered model name.")
    task: Task
    description: str = ""
    experiment: str | None = Field(None, description="MLflow experiment (default: the name).")
    data: DataSpec | None = None
    env: EnvSpec | None = None
    model: ModelSpec
    train: TrainSpec = Field(default_factory=TrainSpec)  # type: ignore[arg-type]
    compute: ComputeSpec = Field(default_factory=ComputeSpec)  # type: ignore[arg-type]
    placement: PlacementSpec | None = None
    monitor: MonitorSpec | None = Field(None, description="Drift thresholds for `gravityml monitor`.")
    lifecycle: LifecycleSpec | None = Field(None, description="The retrain-and-promote loop (`gravityml lifecycle run`).")
    tune: TuneSpec | None = Field(None, description="A budget-capped hyperparameter search over model and train parameters.")

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    def document(self) -> dict[str, Any]:
        """The spec as a mapping that loads back to the same spec (a placed job, a run's job.yaml):
        ``None`` fields left out, and the ``train`` keys its author did not set left unset, since
        a built-in network's loop defaults depend on whether ``epochs`` and ``patience`` were set."""
        dumped = self.model_dump(mode="json", exclude_none=True)
        if "train" in dumped:
            dumped["train"] = {k: v for k, v in dumped["train"].items() if k in self.train.model_fields_set}
        return dumped

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> JobSpec:
        _check_model_type(self.model.type, self.task)
        base_dir = (info.context or {}).get("base_dir")
        _check_model(self.model, self.task, self.data.problem if self.data else "auto", base_dir)
        if self.tune is not None:
            self.tune.check_keys(model_param_names(self.model.type, self.task, self.model.params))
        if self.task == "reinforcement":
            if self.env is None:
                raise SpecError(
                    "env",
                    "a reinforcement job needs an environment",
                    allowed="an env: section (id or entry_point)",
                    got=None,
                    fix="add env: {id: CartPole-v1, n_envs: 8}",
                )
        else:
            if self.data is None:
                raise SpecError(
                    "data",
                    f"a {self.task} job needs data",
                    allowed="a data: section with a source",
                    got=None,
                    fix="add data: {source: sklearn:iris, target: target}",
                )
            if self.env is not None:
                raise SpecError(
                    "env",
                    f"only reinforcement jobs take an environment, this is {self.task}",
                    allowed="env only with task: reinforcement",
                    got=self.env.id or self.env.entry_point,
                    fix="remove env, or set task: reinforcement",
                )
        if self.task in ("supervised", "semi_supervised") and self.data and not self.data.target:
            raise SpecError(
                "data.target",
                f"a {self.task} job needs a target column",
                allowed="the name of a column of the data",
                got=None,
                fix="set data.target to the column to predict",
            )
        return self

    @property
    def base_dir(self) -> Path:
        """Folder that relative data paths are resolved against (the spec file's folder)."""
        return self._base_dir

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name

    def with_base_dir(self, base_dir: Path) -> JobSpec:
        self._base_dir = Path(base_dir)
        return self


#: Losses and optimizers a torch entry point may name without an entry point of its own.
LOSSES = ("cross_entropy", "mse", "l1", "huber")
OPTIMIZERS = ("adamw", "adam", "sgd")


def _check_model(model: ModelSpec, task: str, problem: str, base_dir: Path | None) -> None:
    """An entry point where the type takes one (imported now), then params against the schema."""
    row = MODEL_TYPES[model.type]
    _check_framework(model)
    factory = None
    if row.entry_point:
        if not model.entry_point:
            example = "'xgboost:XGBClassifier'" if row.backend == "sklearn" else "'my_pkg.nets:build'"
            raise SpecError(
                "model.entry_point",
                f"model type {model.type!r} trains your own model and needs its entry point",
                allowed="'package.module:name'",
                got=None,
                fix=f"add entry_point: {example}",
            )
        factory = load_entry_point(model.entry_point, base_dir=base_dir)
    elif model.entry_point:
        raise SpecError(
            "model.entry_point",
            f"{model.type!r} is a built-in type; only types sklearn, torch and keras take an entry point",
            allowed=["sklearn", "torch", "keras"],
            got=model.entry_point,
            fix="remove entry_point, or set model.type: sklearn (an estimator) or torch (an nn.Module factory)",
        )
    for key, names in (("loss", LOSSES), ("optimizer", OPTIMIZERS)):
        value = getattr(model, key)
        if value is None:
            continue
        if model.type != "torch":
            raise SpecError(f"model.{key}", f"only model.type torch takes a {key}", allowed=f"model.{key} with type torch",
                            got=value, fix=f"remove model.{key}")
        if ":" in value:
            load_entry_point(value, f"model.{key}", base_dir)
        elif value not in names:
            raise SpecError(
                f"model.{key}",
                f"{value!r} is not a {key}{did_you_mean(value, list(names))}",
                allowed=list(names),
                got=value,
                fix=f"use one of the allowed names or a 'module:callable' {key}",
            )
    check_model_params(row, task, model.params, problem=problem, factory=factory)


#: The built-in networks that also train on TensorFlow (``framework: tensorflow``).
TENSORFLOW_NETS = ("mlp", "cnn", "text")


def _missing(name: str) -> bool:
    """Whether module ``name`` cannot be imported (found, not imported: no 2-10 s TensorFlow import here)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name] is None  # None: blocked (a test, or an install that forbids it)
    return importlib.util.find_spec(name) is None


def tensorflow_installed() -> bool:
    """Whether TensorFlow and Keras (the tensorflow extra) are installed."""
    return not (_missing("tensorflow") or _missing("keras"))


def _check_framework(model: ModelSpec) -> None:
    on_tf = model.type == "keras" or model.framework == "tensorflow"
    if model.framework == "tensorflow" and model.type not in TENSORFLOW_NETS:
        raise SpecError(
            "model.framework",
            f"{model.type!r} trains on torch only; framework: tensorflow is offered for {', '.join(TENSORFLOW_NETS)}",
            allowed=list(TENSORFLOW_NETS),
            got=model.type,
            fix="remove model.framework, or use model.type: keras with your own Keras model",
        )
    if on_tf and not tensorflow_installed():
        what = "model.type: keras" if model.type == "keras" else f"model.framework: tensorflow ({model.type})"
        raise SpecError(
            "model.framework" if model.type != "keras" else "model.type",
            f"{what} needs TensorFlow and Keras, which are not installed",
            allowed="an environment with the tensorflow extra",
            got="no tensorflow" if _missing("tensorflow") else "no keras",
            fix="pip install 'gravityml[tensorflow]' (make install does)",
        )


def _check_model_type(name: str, task: str) -> None:
    known = model_types_for(task)
    if name in known:
        return
    if name in MODEL_TYPES:
        raise SpecError(
            "model.type",
            f"{name!r} does not serve task {task!r} (it serves {sorted(MODEL_TYPES[name].tasks)})",
            allowed=known,
            got=name,
            fix=f"choose a model type for {task}",
        )
    raise SpecError(
        "model.type",
        f"{name!r} is not a model type for {task}{did_you_mean(name, known)}",
        allowed=known,
        got=name,
        fix="use one of the allowed names",
    )
