"""Thin typer commands over the layers (layer 5). Each module adds its commands to ``app``."""

from gravityml.cli import (  # noqa: F401 - registers the commands
    _gc,  # registers `gc`
    _jobs,
    _jobs_cmd,  # registers `jobs list|logs|status|stop`
    _lifecycle,  # registers `monitor`, `retrain`, `lifecycle`, `models evaluate|rollback`
    _models,
    _plan,  # registers `plan`, `buy-vs-rent` and `costs`
    _precision,  # registers `precision`
    _rl,  # registers `rollout`
    _serve,  # registers `serve` and `export`
)
from gravityml.cli._app import app, main

__all__ = ["app", "main"]
