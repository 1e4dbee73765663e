"""The package layout, kept true: which part of dagster_project may import which (README, "Layout").

Imports are read with `ast` (module level and inside functions alike), so nothing is executed. Each
rule is also run on a small synthetic package that breaks it, so every rule is seen to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dagster_project"

# Layers, lowest first. A module belongs to the first group whose prefix matches its name.
GROUPS: dict[str, tuple[str, ...]] = {
    "foundation": ("dagster_project.settings", "dagster_project.atomic", "dagster_project.k8s"),
    "stages": tuple(f"dagster_project.{s}" for s in ("calibration", "compression", "evaluation", "hub", "registry", "demo")),
    "models": ("dagster_project.models",),
    "artifacts": ("dagster_project.artifacts",),
    "partitions": ("dagster_project.partitions",),
    "resources": ("dagster_project.resources", "dagster_project.deployment"),
    "automation": ("dagster_project.automation",),
    "assets": ("dagster_project.assets",),
    "definitions": ("dagster_project.definitions",),
    "entry_points": ("dagster_project.cli", "dagster_project.demo_run"),
}
# What each group may import besides itself. Everything not listed is "upward" and refused.
ALLOWED: dict[str, set[str]] = {
    "foundation": set(),
    "stages": {"foundation"},
    "models": {"foundation", "stages"},
    "artifacts": {"foundation"},
    "partitions": set(),
    "resources": {"foundation", "stages", "models", "artifacts"},
    "automation": {"foundation", "stages", "models", "artifacts", "partitions", "resources"},
    "assets": {"foundation", "stages", "models", "artifacts", "partitions", "resources", "automation"},
    "definitions": {"foundation", "stages", "models", "artifacts", "partitions", "resources", "automation", "assets"},
    "entry_points": set(GROUPS) - {"entry_points"},
}
# Domain code with no Dagster in it. `dagster_pipes` is the protocol library of the process on the
# other end of Pipes (the vLLM runner), not the orchestrator.
NO_DAGSTER = {"stages", "models"}
DAGSTER_ALLOWED_IN_NO_DAGSTER = {"dagster_pipes"}


def group_of(module: str) -> str | None:
    if module == PACKAGE:
        return "foundation"
    for group, prefixes in GROUPS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return group
    return None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(module: str, source: str, is_package: bool) -> set[str]:
    """Every module name `source` imports (absolute; `from x import y` yields x and x.y)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """`sources`: module name -> (source text, is a package `__init__`). Returns one line per broken rule."""
    out: list[str] = []
    known = set(sources)
    edges: dict[str, set[str]] = {}
    for module, (source, is_package) in sorted(sources.items()):
        mine = group_of(module)
        if mine is None:
            out.append(f"{module}: belongs to no layer (add it to GROUPS)")
            continue
        for target in sorted(imports_of(module, source, is_package)):
            top = target.split(".")[0]
            if top == "tests":
                out.append(f"{module} imports {target}: the product never imports tests or their fakes")
            if mine in NO_DAGSTER and top != PACKAGE and (top == "dagster" or top.startswith("dagster_")) \
                    and top not in DAGSTER_ALLOWED_IN_NO_DAGSTER:
                out.append(f"{module} imports {target}: {mine} code holds no Dagster")
            if top != PACKAGE or target not in known:
                continue  # `from pkg.mod import name`: the name itself is no module
            theirs = group_of(target)
            if theirs == "assets" and mine not in ("assets", "definitions"):
                out.append(f"{module} imports {target}: asset modules are imported by definitions.py only")
            if theirs == "assets" and mine == "assets" and target.rpartition(".")[0] == PACKAGE + ".assets" and target != module:
                out.append(f"{module} imports {target}: asset modules name other assets by key, not by import")
            if theirs is None or theirs == mine:
                continue
            edges.setdefault(mine, set()).add(theirs)
            if theirs not in ALLOWED[mine]:
                out.append(f"{module} imports {target}: {mine} may not import {theirs} (upward)")
    out += [f"import cycle between packages: {' -> '.join(c)}" for c in _cycles(edges)]
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else path + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    return cycles


def package_sources(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    return {module_name(p, root): (p.read_text(), p.name == "__init__.py")
            for p in sorted((root / PACKAGE).rglob("*.py"))}


def test_the_package_keeps_its_boundaries():
    problems = violations(package_sources())
    assert problems == [], "\n".join(problems)


def test_nothing_for_tests_only_lives_in_the_package():
    for folder in ("testing", "fakes", "tests"):
        assert not (ROOT / PACKAGE / folder).exists(), f"{PACKAGE}/{folder}: test doubles belong under tests/"


# ---- every rule can fail --------------------------------------------------------------------

def _pkg(**modules: str) -> dict[str, tuple[str, bool]]:
    base = {"dagster_project": ("", True), "dagster_project.models": ("", True), "dagster_project.assets": ("", True),
            "dagster_project.models.keys": ("", False), "dagster_project.settings": ("", False),
            "dagster_project.assets.base_model": ("", False), "dagster_project.definitions": ("", False),
            "dagster_project.automation": ("", True), "dagster_project.resources": ("", True),
            "dagster_project.compression": ("", True), "dagster_project.compression.recipes": ("", False),
            "dagster_project.artifacts": ("", True), "dagster_project.artifacts.store": ("", False)}
    base.update({name: (source, False) for name, source in modules.items()})
    return base


@pytest.mark.parametrize("modules, expected", [
    ({"dagster_project.resources.hub": "from tests.fakes import HubServer"}, "never imports tests"),
    ({"dagster_project.compression.job": "from dagster import job"}, "holds no Dagster"),
    ({"dagster_project.models.catalog": "import dagster_k8s"}, "holds no Dagster"),
    ({"dagster_project.automation.sensor": "from dagster_project.assets.base_model import read_json"},
     "imported by definitions.py only"),
    ({"dagster_project.assets.calibration": "from dagster_project.assets.base_model import base_model"},
     "name other assets by key"),
    ({"dagster_project.models.catalog": "def f():\n    from dagster_project.artifacts.store import ArtifactStore"},
     "models may not import artifacts (upward)"),
    ({"dagster_project.compression.job": "from dagster_project.models import keys"}, "stages may not import models"),
    ({"dagster_project.artifacts.layout": "from .. import definitions"}, "artifacts may not import definitions"),
    ({"dagster_project.extra": ""}, "belongs to no layer"),
])
def test_each_rule_fails_on_a_package_that_breaks_it(modules, expected):
    problems = violations(_pkg(**modules))
    assert any(expected in p for p in problems), problems


def test_a_cycle_between_packages_is_named():
    # Both directions of one pair: the layer rule refuses one, and the cycle is reported as such.
    problems = violations(_pkg(**{
        "dagster_project.automation.jobs": "from dagster_project.resources import hub",
        "dagster_project.resources.hub": "from dagster_project.automation import jobs",
    }))
    assert any(p.startswith("import cycle between packages: ") and "automation" in p and "resources" in p
               for p in problems), problems


def test_a_clean_synthetic_package_passes():
    assert violations(_pkg(**{
        "dagster_project.models.catalog": "from dagster_project.models.keys import x\nfrom dagster_project.compression import recipes",
        "dagster_project.evaluation": "from dagster_pipes import open_dagster_pipes",
    })) == []


def test_the_images_are_sent_the_package_not_the_tests():
    for ignore in sorted((ROOT / "deploy" / "docker").glob("*.dockerignore")):
        sent = [line[1:] for line in ignore.read_text().splitlines() if line.startswith("!")]
        assert "dagster_project/**" in sent, ignore
        assert not [s for s in sent if s.split("/")[0] in ("tests", "benchmarks")], (ignore, sent)


# ---- the settings object is the only reader of DMC_* ----------------------------------------
SETTINGS_MODULE = "dagster_project.settings"
# Non-DMC variables read where a library's idiom needs them, per module. "?": a name held in a
# variable (a configurable secret's name, Dagster's Pipes constant); "*": the whole environment.
ENV_EXCEPTIONS: dict[str, set[str]] = {
    # LLM_COMPRESSOR_LOG_LEVEL: llmcompressor's own knob, defaulted so its import keeps `--json` stdout clean.
    "dagster_project.cli": {"DAGSTER_HOME", "LLM_COMPRESSOR_LOG_LEVEL"},
    "dagster_project.demo_run": {"DAGSTER_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE",
                                 "TQDM_DISABLE", "OMP_WAIT_POLICY"},  # OpenMP's own knob: sleep, don't spin
    "dagster_project.definitions": {"HF_ENDPOINT"},
    "dagster_project.assets.publication": {"HF_ENDPOINT", "DAGSTER_DEPLOYMENT"},
    "dagster_project.artifacts.store": {"AWS_ACCESS_KEY_ID"},  # then EnvVar, Dagster's idiom for credentials
    "dagster_project.resources.hf_hub": {"HF_ENDPOINT", "?"},  # ? = token_env_var (HF_TOKEN)
    "dagster_project.resources.model_registry": {"?"},  # ? = token_env_var: another secret's name, opt-in
    # CUDA_*/VLLM_*/HF_* pass through to the vLLM subprocess; the Hub tokens are kept off its command line.
    "dagster_project.resources.vllm_pipes": {"*"},
    "dagster_project.registry.mlflow_registry": {"MLFLOW_TRACKING_TOKEN", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"},
    "dagster_project.evaluation.vllm_runner": {"?"},  # ? = dagster_pipes.DAGSTER_PIPES_CONTEXT_ENV_VAR
}
LOOKUPS = ("get", "setdefault", "pop")


def env_reads(source: str) -> list[tuple[int, str]]:
    """(line, variable) of every environment read: os.environ / os.getenv, and any lookup keyed by a
    DMC_ name (`env.get("DMC_X")`, `env[NAME]` with NAME = "DMC_X"), whatever the mapping."""
    tree = ast.parse(source)
    consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
              for t in n.targets if isinstance(t, ast.Name)}
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def key(node: ast.AST) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in consts:
            return consts[node.id]
        return "?"

    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and {a.name for a in node.names} & {"environ", "getenv"}:
            found.append((node.lineno, "*"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            p = parent.get(node)
            if node.attr == "getenv":
                call = p if isinstance(p, ast.Call) and p.args else None
                found.append((node.lineno, key(call.args[0]) if call else "*"))
            elif node.attr == "environ":
                if isinstance(p, ast.Attribute) and p.attr in LOOKUPS and isinstance(parent.get(p), ast.Call) \
                        and parent[p].args:
                    found.append((node.lineno, key(parent[p].args[0])))
                elif isinstance(p, ast.Subscript) and p.value is node:
                    found.append((node.lineno, key(p.slice)))
                elif isinstance(p, ast.Compare) and node in p.comparators and isinstance(p.ops[0], (ast.In, ast.NotIn)):
                    found.append((node.lineno, key(p.left)))
                else:
                    found.append((node.lineno, "*"))
        # A DMC_ name used as a lookup key on any mapping (an environment passed around).
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOOKUPS \
                and node.args and key(node.args[0]).startswith("DMC_"):
            found.append((node.lineno, key(node.args[0])))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and key(node.slice).startswith("DMC_"):
            found.append((node.lineno, key(node.slice)))
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)) \
                and key(node.left).startswith("DMC_"):
            found.append((node.lineno, key(node.left)))
    return found


def env_violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    problems = []
    for module, (source, _) in sorted(sources.items()):
        if module == SETTINGS_MODULE:
            continue
        allowed = ENV_EXCEPTIONS.get(module, set())
        for line, name in env_reads(source):
            if name.startswith("DMC_"):
                problems.append(f"{module}:{line} reads {name}: DMC_* settings are read by {SETTINGS_MODULE} only")
            elif name not in allowed:
                what = {"*": "the whole environment", "?": "a variable named at run time"}.get(name, name)
                problems.append(f"{module}:{line} reads {what}: not a listed exception (ENV_EXCEPTIONS)")
    return problems


def test_only_the_settings_module_reads_dmc_variables():
    problems = env_violations(package_sources())
    assert problems == [], "\n".join(problems)


def test_the_settings_module_does_read_them():
    # The scan must see the reads it exists to allow, or it would pass by seeing nothing.
    reads = env_reads((ROOT / "dagster_project" / "settings.py").read_text())
    assert ("XDG_CACHE_HOME" in {name for _, name in reads}) and any(name == "*" for _, name in reads)


@pytest.mark.parametrize("source, expected", [
    ('import os\nx = os.environ.get("DMC_FOO")', "reads DMC_FOO"),
    ('import os\nx = os.getenv("DMC_FOO", "1")', "reads DMC_FOO"),
    ('import os\nx = os.environ["DMC_FOO"]', "reads DMC_FOO"),
    ('import os\nx = "DMC_FOO" in os.environ', "reads DMC_FOO"),
    ('NAME = "DMC_FOO"\ndef f(env):\n    return env.get(NAME)', "reads DMC_FOO"),
    ('def f(env):\n    return env["DMC_FOO"]', "reads DMC_FOO"),
    ('import os\nenv = dict(os.environ)', "reads the whole environment"),
    ('from os import environ', "reads the whole environment"),
    ('import os\ndef f(n):\n    return os.environ.get(n)', "reads a variable named at run time"),
    ('import os\nx = os.environ.get("HOME")', "reads HOME: not a listed exception"),
])
def test_each_environment_rule_fails_on_a_module_that_breaks_it(source, expected):
    problems = env_violations({"dagster_project.compression.recipes": (source, False)})
    assert any(expected in p for p in problems), problems


def test_the_settings_module_and_listed_exceptions_pass():
    assert env_violations({
        SETTINGS_MODULE: ('import os\nx = os.environ.get("DMC_FOO")', False),
        "dagster_project.cli": ('import os\nx = os.environ.get("DAGSTER_HOME")', False),
    }) == []


# ---- assets receive settings (the `settings` resource); they do not load them ------------------
def settings_loads(modules: dict[str, str]) -> list[str]:
    """Asset modules that call load_settings() / read settings at call time instead of using the resource."""
    problems = []
    for module, source in modules.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name) and node.id == "load_settings" or \
                    isinstance(node, ast.Attribute) and node.attr == "load_settings":
                problems.append(f"{module}:{node.lineno} calls load_settings(): take the `settings` resource")
    return problems


def test_assets_take_settings_from_the_resource():
    modules = {f"dagster_project.assets.{p.stem}": p.read_text()
               for p in (ROOT / "dagster_project" / "assets").glob("*.py")}
    assert len(modules) >= 6 and settings_loads(modules) == []


def test_the_settings_rule_fails_on_an_asset_that_loads_them():
    src = "from dagster_project.settings import load_settings\ndef a():\n    return load_settings().eval.limit\n"
    assert settings_loads({"dagster_project.assets.x": src})
