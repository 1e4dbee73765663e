"""Loading the code location vs an empty Dagster definitions file (goal: ratio <= 1.2).

    python benchmarks/bench_definitions.py [--repeats 7]

Each side is a fresh interpreter, `python -c "import ..."`, timed from its launch until `defs` is
loaded (process start included, its exit not), alternating, best of N. The empty side is `defs = Definitions()` in a module of
its own, so both pay for `import dagster`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OFFLINE_ENV, ROOT, report

GOAL = 1.2


def timed_import(module: str, path: Path) -> float:
    """Seconds from launching the interpreter until `defs` is loaded. The interpreter's exit is left
    out: it is not loading, and its final garbage collection depends on how the heap was left."""
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": f"{path}{os.pathsep}{ROOT}"}
    code = f"import {module}, time; {module}.defs; print(time.time())"
    started = time.time()
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=path, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1]) - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    empty_dir = Path(tempfile.mkdtemp(prefix="dmc-bench-defs-"))
    (empty_dir / "empty_definitions.py").write_text("from dagster import Definitions\n\ndefs = Definitions()\n")
    # Installed packages and images carry bytecode; an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would recompile every module on each import instead.
    import compileall

    compileall.compile_dir(str(ROOT / "dagster_project"), quiet=1)
    compileall.compile_file(str(empty_dir / "empty_definitions.py"), quiet=1)
    timed_import("dagster_project.definitions", ROOT)  # warm the page cache for both
    timed_import("empty_definitions", empty_dir)
    project, empty = [], []
    for _ in range(args.repeats):
        project.append(timed_import("dagster_project.definitions", ROOT))
        empty.append(timed_import("empty_definitions", empty_dir))
    best_p, best_e = min(project), min(empty)
    ratio = best_p / best_e
    print(f"import dagster_project.definitions: best {best_p:.3f} s of {args.repeats}")
    print(f"import empty Definitions():         best {best_e:.3f} s of {args.repeats}")
    print(f"ratio {ratio:.3f} (goal <= {GOAL})")
    report("definitions load vs empty Definitions", f"python -c import, best of {args.repeats}",
           f"{best_p:.2f} s vs {best_e:.2f} s", f"<= {GOAL}", ratio, ratio <= GOAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
