"""The two lock files cover what pyproject.toml asks for: a dependency added or re-pinned in
pyproject.toml without re-running the lock script fails here, offline, instead of failing
`make install` or the image build (`pip install -c …` refuses a pin that contradicts the lock)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# lock file → (extras it was resolved with, the script that regenerates it)
LOCKS = {
    "constraints.txt": (("compress", "eval", "k8s", "dev"), "scripts/lock.sh"),
    "constraints-vllm.txt": (("vllm", "k8s"), "scripts/lock_vllm.sh"),
}


def pins(lock: Path) -> dict[str, str]:
    out = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            out[canonicalize_name(req.name)] = spec.version
    return out


def wanted(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"].get(extra, [])]
    env = {"python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "os_name": "posix", "extra": ""}
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def lock_problems(locked: dict[str, str], reqs: list[Requirement]) -> list[str]:
    problems = []
    for req in reqs:
        name = canonicalize_name(req.name)
        if name == "dagster-model-compression":  # the project's own extras
            continue
        if name not in locked:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{req.name}{req.specifier} but the lock has {locked[name]}")
    return problems


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_covers_pyproject(lock):
    extras, script = LOCKS[lock]
    locked = pins(ROOT / lock)
    assert len(locked) > 50
    problems = lock_problems(locked, wanted(extras))
    assert not problems, f"{lock} is older than pyproject.toml (run `bash {script}`): {problems}"


def test_a_stale_lock_is_reported():
    reqs = [Requirement("mlflow-skinny==3.17.2"), Requirement("cachetools<8")]
    assert lock_problems({"cachetools": "8.0.2"}, reqs) == [
        "mlflow-skinny is not in the lock", "cachetools<8 but the lock has 8.0.2"]
