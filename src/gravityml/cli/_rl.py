"""`gravityml rollout`: run a trained policy in its environment and report its returns."""

from __future__ import annotations

from pathlib import Path

import typer

from gravityml.cli._app import app, console, status, table


@app.command()
def rollout(
    policy: str = typer.Argument(..., help="NAME, NAME/VERSION, NAME@ALIAS or a model folder of a policy."),
    episodes: int = typer.Option(10, "--episodes", "-n", help="Episodes to run."),
    seed: int = typer.Option(0, "--seed", help="Episode i resets with seed + i (same seed, same returns)."),
    gif: Path | None = typer.Option(None, "--gif", help="Render the first episode to this GIF (rgb_array envs)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Cut episodes after this many steps."),
    env_path: Path | None = typer.Option(
        None, "--env-path", help="Folder holding a custom env's module (default: the training spec's folder)."
    ),
) -> None:
    """Run a policy for some episodes; print the mean and standard deviation of the return."""
    from gravityml.data import check_folder_writable
    from gravityml.inference import rollout as rollout_

    if gif is not None:
        check_folder_writable(gif.parent, role="--gif")  # before the episodes run

    with status(f"rolling out {policy} for {episodes} episodes"):
        result = rollout_(policy, episodes=episodes, seed=seed, gif=gif, max_steps=max_steps, env_path=env_path)
    rows = [(i + 1, r, n) for i, (r, n) in enumerate(zip(result.returns, result.lengths))]
    console.print(table(f"{result.model_ref} on {result.env}", ["episode", "return", "length"], rows))
    console.print(
        f"mean return {result.mean_return:.2f} ± {result.std_return:.2f} over {episodes} episodes "
        f"(min {min(result.returns):.2f}, max {max(result.returns):.2f}, seed {seed})"
    )
    if result.gif is not None:
        console.print(f"gif       {result.gif}")
