"""Thin typer commands over the layers (layer 5). Each module adds its commands to ``app``."""

from gravityml.cli import _jobs, _models  # noqa: F401 - registers the commands
from gravityml.cli import _rl  # noqa: F401 - registers `rollout`
from gravityml.cli import _serve  # noqa: F401 - registers `serve` and `export`
from gravityml.cli import _plan  # noqa: F401 - registers `plan`, `buy-vs-rent` and `costs`
from gravityml.cli import _precision  # noqa: F401 - registers `precision`
from gravityml.cli import _jobs_cmd  # noqa: F401 - registers `jobs list|logs|status|stop`
from gravityml.cli import _lifecycle  # noqa: F401 - registers `monitor`, `retrain`, `lifecycle`, `models evaluate|rollback`
from gravityml.cli import _gc  # noqa: F401 - registers `gc`
from gravityml.cli._app import app, main

__all__ = ["app", "main"]
