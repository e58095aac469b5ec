"""`gravityml gc`: list and remove what killed commands left and what no run owns."""

from __future__ import annotations

from pathlib import Path

import typer

from gravityml.cli._app import app, console, table


def _count(n: int) -> str:
    return f"{n} leftover" + ("" if n == 1 else "s")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


@app.command()
def gc(
    folders: list[Path] = typer.Argument(  # noqa: B008 - typer reads the default here
        None, help="Folders where outputs were written (predict -o, export -o): their leftovers too."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", "--list", help="Only list what would be removed."),
) -> None:
    """Remove temporary files, scratch folders, checkpoints, cached models and artefacts no run owns."""
    from gravityml.tracking import Workspace
    from gravityml.tracking._gc import find_leftovers, remove_leftovers

    ws = Workspace.current()
    found = find_leftovers(ws, folders or ())
    if not found:
        console.print(f"nothing to remove in {ws.root}" + (f" or {', '.join(map(str, folders))}" if folders else ""))
        return
    rows = [(item.kind, str(item.path), _mb(item.size_bytes), item.reason) for item in found]
    total = sum(item.size_bytes for item in found)
    verb = "would remove" if dry_run else "removing"
    console.print(table(f"{verb} {_count(len(found))} ({_mb(total)})", ["kind", "path", "size", "why"], rows))
    if dry_run:
        console.print("run `gravityml gc` without --dry-run to remove them")
        return
    freed = remove_leftovers(found)
    console.print(f"removed {_count(len(found))}, {_mb(freed)} freed")
