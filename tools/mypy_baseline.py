"""mypy over src/gravityml, held to a recorded number of errors that may only go down.

    python tools/mypy_baseline.py           # fail if mypy reports more errors than tools/mypy-baseline.txt
    python tools/mypy_baseline.py --record  # write today's errors there (do it when the count fell)

The baseline file's first line is the count; the errors follow, for reference (line numbers drift, so
only the count is compared). Settings (the pydantic plugin, files) are in pyproject.toml [tool.mypy].
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tools" / "mypy-baseline.txt"
ERROR = re.compile(r"^\S+\.py:\d+(:\d+)?: error: ")


def run_mypy() -> list[str]:
    from mypy import api

    out, err, _status = api.run(["--config-file", str(ROOT / "pyproject.toml")])
    if err.strip() and not out.strip():
        raise SystemExit(f"mypy did not run: {err.strip()}")
    return [line for line in out.splitlines() if ERROR.match(line)]


def recorded() -> int:
    if not BASELINE.exists():
        return 0
    first = BASELINE.read_text(encoding="utf-8").splitlines()[:1]
    return int(first[0].split()[0]) if first else 0


def main(argv: list[str]) -> int:
    errors = run_mypy()
    if "--record" in argv:
        BASELINE.write_text(f"{len(errors)} mypy errors (the most allowed)\n" + "\n".join(errors) + "\n",
                            encoding="utf-8")
        print(f"mypy: recorded {len(errors)} errors in {BASELINE.relative_to(ROOT)}")
        return 0
    limit = recorded()
    if len(errors) > limit:
        print("\n".join(errors))
        print(f"mypy: {len(errors)} errors, more than the {limit} recorded in {BASELINE.relative_to(ROOT)}. "
              "To fix: correct the new ones above (the baseline only goes down)")
        return 1
    note = f"; fewer than the {limit} recorded: run `python tools/mypy_baseline.py --record`" if len(errors) < limit else ""
    print(f"mypy: {len(errors)} errors (baseline {limit}){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
