"""Where ``gravityml.errors`` errors are raised without all four parts (what, allowed, got, fix).

    python tools/error_parts.py           # list the raise sites that lack a part
    python tools/error_parts.py --record  # write them to tests/errors_baseline.txt

A site is ``path::function`` (the innermost function holding the call). ``tests/test_errors.py``
fails when a site lacks a part and is not in the baseline (so the list only shrinks), and the
suite's conftest fails any test during which an error was built without its four parts, unless it
was built at a baseline site.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
BASELINE = ROOT / "tests" / "errors_baseline.txt"
PARTS = ("allowed", "got", "fix")


def error_classes() -> set[str]:
    sys.path.insert(0, str(SRC))
    from gravityml import errors

    return {n for n in errors.__all__ if isinstance(getattr(errors, n), type)
            and issubclass(getattr(errors, n), errors.GravityMLError)}


def incomplete_sites() -> dict[str, list[str]]:
    """``{"gravityml/x.py::func": ["allowed", ...]}`` for every call of an error class missing a part."""
    names = error_classes()
    found: dict[str, list[str]] = {}
    for path in sorted((SRC / "gravityml").rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def visit(node: ast.AST, function: str, rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
                if isinstance(child, ast.Call):
                    f = child.func
                    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                    keywords = {k.arg for k in child.keywords}
                    if name in names and None not in keywords:  # **kwargs: checked when it runs
                        missing = [p for p in PARTS if p not in keywords]
                        if missing:
                            found.setdefault(f"{rel}::{function}", []).extend(missing)
                visit(child, inner)

        visit(tree, "<module>")
    return found


def baseline() -> set[str]:
    if not BASELINE.exists():
        return set()
    lines = BASELINE.read_text(encoding="utf-8").splitlines()
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


def main(argv: list[str]) -> int:
    sites = incomplete_sites()
    if "--record" in argv:
        text = "# raise sites whose errors lack a part (what; allowed; got. To fix); the list only shrinks.\n"
        text += "# Re-record with: python tools/error_parts.py --record\n"
        text += "".join(f"{site}  lacks {', '.join(sorted(set(parts)))}\n" for site, parts in sorted(sites.items()))
        BASELINE.write_text(text, encoding="utf-8")
        print(f"recorded {len(sites)} sites in {BASELINE.relative_to(ROOT)}")
        return 0
    for site, parts in sorted(sites.items()):
        print(f"{site}  lacks {', '.join(sorted(set(parts)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
