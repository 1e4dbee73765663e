"""Which carried wheels the GPU machine lacks, and which requirements stay unmet once they are on the path.

`python wheelcheck.py missing DIR` prints the wheels in DIR whose exact version is not installed (what
check.sh installs); `python wheelcheck.py unmet DIR` prints every requirement of those packages that the
environment does not satisfy (pip's `--no-deps` install checks nothing). Needs only `packaging`.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carried(wheel_dir: Path) -> dict[str, tuple[str, Path]]:
    """Canonical name → (version, wheel file), from wheel file names (PEP 427: name-version-...)."""
    out = {}
    for wheel in sorted(Path(wheel_dir).glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        out[_canonical(name)] = (version, wheel)
    return out


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def missing(wheel_dir: Path) -> list[Path]:
    return [wheel for name, (version, wheel) in carried(wheel_dir).items() if installed_version(name) != version]


def unmet(names: list[str]) -> list[str]:
    """'package: requirement (found X)' for each requirement of `names` the environment does not satisfy."""
    from packaging.requirements import Requirement

    problems = []
    for name in names:
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: not installed")
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an optional extra, or another platform / Python
            found = installed_version(req.name)
            if found is None or (req.specifier and not req.specifier.contains(found, prereleases=True)):
                problems.append(f"{name}: {req} (found {found or 'nothing'})")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("missing", "unmet"):
        print("usage: wheelcheck.py missing|unmet WHEEL_DIR", file=sys.stderr)
        return 2
    wheel_dir = Path(argv[1])
    if argv[0] == "missing":
        for wheel in missing(wheel_dir):  # one per line, nothing at all when none is missing
            print(wheel)
        return 0
    problems = unmet(sorted(carried(wheel_dir)))
    print("\n".join(problems) if problems else "all requirements of the carried packages are met")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
