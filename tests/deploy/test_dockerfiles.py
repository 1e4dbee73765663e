"""Static checks of the two images: extras, separation of compress and vLLM, user, entrypoints."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = {"compress": DOCKER / "Dockerfile.compress", "eval": DOCKER / "Dockerfile.eval"}
EXTRAS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def parse(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; joins `\\` continuations, drops comments."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instr, _, args = buf.partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    assert not buf, f"{path}: dangling line continuation"
    return out


def final_stage(instrs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (k, _) in enumerate(instrs) if k == "FROM"]
    return instrs[starts[-1]:]


def installed_extras(instrs) -> set[str]:
    extras: set[str] = set()
    for kind, args in instrs:
        if kind == "RUN" and "pip install" in args:
            for group in re.findall(r"\.\[([A-Za-z0-9_,\- ]+)\]", args):
                extras |= {e.strip() for e in group.split(",")}
    return extras


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def module_exists(module: str) -> bool:
    if module.split(".")[0] == "dagster_project":
        base = ROOT.joinpath(*module.split("."))
        return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()
    return importlib.util.find_spec(module) is not None


def console_script_exists(name: str) -> bool:
    if name in {"python", "python3", "sh", "bash"}:
        return True
    if name in {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}:
        return True
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})
    return name in scripts


def commands(name: str) -> list[list[str]]:
    """Every command the image starts: CMD, ENTRYPOINT, and the entrypoint script's exec lines."""
    stage = final_stage(parse(DOCKERFILES[name]))
    cmds = [exec_form(a) for k, a in stage if k in ("CMD", "ENTRYPOINT")]
    for k, a in stage:
        if k == "COPY" and "eval-entrypoint.sh" in a:
            script = (DOCKER / "eval-entrypoint.sh").read_text()
            cmds += [shlex.split(m) for m in re.findall(r"^\s*exec (python .*)$", script, re.M)]
    return [c for c in cmds if c]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_extras_exist(name: str) -> None:
    extras = installed_extras(parse(DOCKERFILES[name]))
    assert extras, f"{name}: installs no project extras"
    assert extras <= EXTRAS, f"{name}: unknown extras {extras - EXTRAS}"


def test_compress_and_vllm_never_together() -> None:
    compress = installed_extras(parse(DOCKERFILES["compress"]))
    evaluation = installed_extras(parse(DOCKERFILES["eval"]))
    assert {"compress", "k8s"} <= compress and "vllm" not in compress
    assert "vllm" in evaluation and "compress" not in evaluation


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_as_non_root(name: str) -> None:
    stage = final_stage(parse(DOCKERFILES[name]))
    users = [a for k, a in stage if k == "USER"]
    assert users, f"{name}: final stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert stage[0][1].split()[-1].startswith("${PYTHON_IMAGE}") or "python:3.11" in stage[0][1]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILES[name].read_text()


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copied_sources_exist(name: str) -> None:
    for kind, args in parse(DOCKERFILES[name]):
        if kind != "COPY" or "--from=" in args:
            continue
        sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
        for src in sources:
            if "[" in src:  # optional file: glob that may match nothing
                continue
            assert (ROOT / src).exists(), f"{name}: COPY source {src} missing"


def test_compress_entrypoint() -> None:
    (cmd,) = commands("compress")
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert console_script_exists("dagster")
    module = cmd[cmd.index("-m") + 1]
    assert module == "dagster_project.definitions"
    assert module_exists(module), f"{module} does not exist yet"


def test_eval_entrypoint() -> None:
    cmds = commands("eval")
    runner = [c for c in cmds if c[:2] == ["python", "-m"]]
    assert runner and runner[0][2] == "dagster_project.evaluation.vllm_runner"
    for cmd in cmds:
        assert console_script_exists(cmd[0]) or (cmd[0] == "dmc-eval-entrypoint")
        if "-m" in cmd:
            module = cmd[cmd.index("-m") + 1]
            assert module_exists(module), f"{module} does not exist yet"


def test_dockerignore_keeps_what_is_copied() -> None:
    for name, path in DOCKERFILES.items():
        ignore = path.with_name(path.name + ".dockerignore").read_text()
        assert "!dagster_project/**" in ignore and "!pyproject.toml" in ignore


def test_buildkit_parses_both_dockerfiles() -> None:
    """BuildKit's own parser (Go, deploy/docker/lint) rejects unknown instructions and flags."""
    import subprocess

    # The script installs Go if needed and caches the binary; a failure to build fails this test.
    built = subprocess.run(["bash", str(ROOT / "scripts" / "build_dockerfile_lint.sh")],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    lint = built.stdout.strip().splitlines()[-1]
    proc = subprocess.run([lint, *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": OK") == len(DOCKERFILES)


def test_buildkit_check_rejects_an_unknown_flag(tmp_path) -> None:
    """The parser check can fail: a mistyped flag is refused."""
    import subprocess

    lint = subprocess.run(["bash", str(ROOT / "scripts" / "build_dockerfile_lint.sh")], capture_output=True,
                          text=True, timeout=900, check=True).stdout.strip().splitlines()[-1]
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM scratch\nCOPY --chmood=755 a /a\n")
    proc = subprocess.run([lint, str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "chmood" in proc.stdout, proc.stdout + proc.stderr
