"""Bad inputs, one table: each row is materialized through Dagster (the definitions' assets and
resources) the way a user would, and must

* fail with the specific error type, whose message names the problem (asserted on both),
* leave no partial artifact (no manifest / variant folder / temp folder for that partition),
* publish nothing (local registry and loopback Hub unchanged),
* leave a good partition materialized earlier byte-for-byte intact.

Rows whose owning layer raises first (recipe validation, catalog, calibration spec) are checked
there too, with `pytest.raises` on the same type. Disk-full uses a real 2 MiB tmpfs (`mount -t
tmpfs`; tests run as root): where mount is refused the row fails, it never skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READ_TOKEN = "hf_badInputsReadOnlyToken0123456789abcdef"  # noqa: S105 - loopback test tokens
WRITE_TOKEN = "hf_badInputsWriteToken0123456789abcdefgh"  # noqa: S105
GOOD = "good"
GOOD_RECIPE = "w4a16-rtn"  # materialized, approved and registered before the table runs
SPARE_RECIPE = "w8a16-rtn"  # materialized and approved, never published: target of publication rows
LIMIT = 10  # lm-eval examples per task: the checks only need a real, approved report
RC_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# ---------------------------------------------------------------------------------- the world


@dataclass
class World:
    var: Path
    artifacts: Path
    instance: object
    hub: object
    demo: Path
    models_file: Path
    good_snapshot: dict
    good_registry: list
    hub_repos: list
    extra_dirs: list = field(default_factory=list)

    def models(self, key: str) -> Path:
        return self.artifacts / "models" / key


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _registry_rows(var: Path) -> list:
    from dagster_project.registry import open_registry

    with open_registry(f"sqlite:///{var / 'registry.sqlite'}") as reg:
        return sorted((v.model_name, v.version_name, v.registry_version_id, v.uri)
                      for v in reg.list_versions(approved_only=False, include_archived=True))


def _copy_model(demo: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in demo.iterdir():
        if f.is_file():
            os.symlink(f, dest / f.name)
    return dest


def _catalog(world_dir: Path, demo: Path) -> str:
    corrupt = world_dir / "corrupt-model"
    corrupt.mkdir()
    for f in demo.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy(f, corrupt / f.name)
    (corrupt / "model.safetensors").write_bytes(b"\xff" * 8 + b"this is not a safetensors header" * 100)
    truncated = world_dir / "truncated-model"
    truncated.mkdir()
    for f in demo.iterdir():
        if f.is_file():
            shutil.copy(f, truncated / f.name)
    weights = next(truncated.glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # valid header, half the tensor bytes
    no_config = world_dir / "not-a-model"
    no_config.mkdir()
    (no_config / "README.md").write_text("hello\n")
    good_copy = _copy_model(demo, world_dir / "good-copy")
    entries = [
        {"key": GOOD, "source": "local", "path": str(good_copy)},
        {"key": "good2", "source": "local", "path": str(good_copy)},
        {"key": "hf-missing", "source": "hf", "repo_id": "acme/does-not-exist"},
        {"key": "hf-badrev", "source": "hf", "repo_id": "acme/tiny", "revision": "no-such-branch"},
        {"key": "hf-badsha", "source": "hf", "repo_id": "acme/tiny", "revision": "0" * 40},
        {"key": "hf-gated", "source": "hf", "repo_id": "acme/gated"},
        {"key": "hf-private", "source": "hf", "repo_id": "acme/private"},
        {"key": "corrupt", "source": "local", "path": str(corrupt)},
        {"key": "truncated", "source": "local", "path": str(truncated)},
        {"key": "no-config", "source": "local", "path": str(no_config)},
        {"key": "missing-dir", "source": "local", "path": str(world_dir / "nowhere")},
        {"key": "bad-tasks", "source": "local", "path": str(good_copy), "task_set": "no-such-task-set"},
    ]
    import yaml

    return yaml.safe_dump({"models": entries})


@pytest.fixture(scope="module")
def world(demo_model, tmp_path_factory):
    from dagster import DagsterInstance, MultiPartitionKey, materialize
    from huggingface_hub import constants

    from dagster_project import definitions as d
    from tests.fakes import HubServer, hub_client_online

    base = tmp_path_factory.mktemp("bad-inputs")
    var = base / "var"
    home = var / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    models_file = base / "models.yaml"
    models_file.write_text(_catalog(base, demo_model))
    mp = pytest.MonkeyPatch()
    for k in ("DMC_REGISTRY_URL", "DMC_ARTIFACT_ROOT", "DMC_REGISTRY_DB", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
              "DMC_REGISTRY_TOKEN", "DMC_EVAL_INCLUDE_PATH", "DMC_ARTIFACT_STORE_KIND"):
        mp.delenv(k, raising=False)
    mp.setenv("DMC_VAR_DIR", str(var))
    mp.setenv("DAGSTER_HOME", str(home))
    mp.setenv("DMC_MODELS_FILE", str(models_file))
    mp.setenv("TQDM_DISABLE", "1")
    mp.setattr(constants, "HF_TOKEN_PATH", str(base / "no-token"))
    mp.setattr(constants, "HF_STORED_TOKENS_PATH", str(base / "no-stored-tokens"))
    mp.setattr(constants, "HF_HUB_CACHE", str(base / "hf-cache"))
    mp.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    tiny = {"config.json": '{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}',
            "model.safetensors": (demo_model / "model.safetensors").read_bytes()}
    try:
        with HubServer(base / "hub", tokens={READ_TOKEN: "read", WRITE_TOKEN: "write"}) as hub, \
                hub_client_online(), DagsterInstance.get() as instance:
            hub.add_model("acme/tiny", tiny)
            hub.add_model("acme/gated", tiny, gated=True, gated_allow=[])
            hub.add_model("acme/private", tiny, private=True)
            mp.setenv("HF_ENDPOINT", hub.url)
            instance.add_dynamic_partitions("models", [GOOD, "good2"])
            instance.add_dynamic_partitions("recipes", [GOOD_RECIPE, SPARE_RECIPE])
            rc = {**RC_QUIET, "ops": {"calibration_dataset": {"config": {"num_samples": 16, "max_seq_length": 64}},
                                      "base_evaluation": {"config": {"limit": LIMIT}}}}
            res = materialize([d.base_model, d.calibration_dataset, d.base_evaluation], partition_key=GOOD,
                              instance=instance, resources=d.defs.resources, run_config=rc)
            assert res.success
            assert materialize([d.base_model], partition_key="good2", instance=instance,
                               resources=d.defs.resources, run_config=RC_QUIET).success
            checks = [d.loads_and_generates, d.recovery_meets_threshold, d.size_reduced]
            ev = {**RC_QUIET, "ops": {"evaluation_report": {"config": {"limit": LIMIT}}}}
            res = materialize([d.compressed_model, d.evaluation_report, *checks, d.hub_release, d.registry_entry],
                              partition_key=MultiPartitionKey({"model": GOOD, "recipe": GOOD_RECIPE}),
                              instance=instance, resources=d.defs.resources, run_config=ev)
            assert res.success
            res = materialize([d.compressed_model, d.evaluation_report, *checks],
                              partition_key=MultiPartitionKey({"model": GOOD, "recipe": SPARE_RECIPE}),
                              instance=instance, resources=d.defs.resources, run_config=ev)
            assert res.success
            artifacts = var / "artifacts"
            w = World(var=var, artifacts=artifacts, instance=instance, hub=hub, demo=demo_model,
                      models_file=models_file, good_snapshot=_snapshot(artifacts / "models" / GOOD),
                      good_registry=_registry_rows(var), hub_repos=hub.models)
            assert len(w.good_registry) == 1 and w.good_registry[0][0] == f"{GOOD}-{GOOD_RECIPE}"
            yield w
    finally:
        mp.undo()


# ---------------------------------------------------------------------------------- the table


@dataclass
class Case:
    id: str
    partition: str  # "model" or "model|recipe"
    assets: tuple[str, ...]
    error: str  # name of the exact error class expected (the user-visible error, not a wrapper)
    match: str  # regex the message of that same error must match (case-insensitive)
    absent: tuple[str, ...] = ()  # paths under artifacts/models that must not exist afterwards
    run_config: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    hub_publish: bool = False
    setup: Callable | None = None  # (world, tmp_path, monkeypatch) -> None
    layer: Callable | None = None  # () -> None; must raise an `error` matching `match`


def _jsonl(tmp: Path, rows: list[dict]) -> str:
    path = tmp / "calibration.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _user_recipe(name: str, text: str):
    def setup(world, tmp, mp):
        d = world.artifacts / "recipes"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.yaml").write_text(text)  # as if copied there by hand (the CLI validates first)
    return setup


def _layer_recipe(name: str, text: str):
    def layer():
        from dagster_project.compression.catalog import register_user_recipe

        register_user_recipe(Path("/nonexistent-never-written"), name, text)
    return layer


def _layer_calibration(**spec):
    def layer():
        from dagster_project.calibration.build import CalibrationSpec, _load_rows

        _load_rows(CalibrationSpec(**spec))
    return layer


def _layer_key(key: str):
    def layer():
        from dagster_project.models.catalog import resolve_model

        resolve_model(key)
    return layer


def _layer_hub(repo: str, rev: str | None = None):
    def layer():
        from dagster_project.resources.hf_hub import HuggingFaceHubResource

        HuggingFaceHubResource().resolve_revision(repo, rev)
    return layer


def _calib(**config):
    return {"ops": {"calibration_dataset": {"config": config}}}


def _setup_calibration_file(rows: list[dict], **extra):
    def setup(world, tmp, mp):
        extra_cfg = dict(extra)
        extra_cfg["source"] = _jsonl(tmp, rows)
        setup.run_config = _calib(**extra_cfg)
    return setup


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _setup_unreachable_registry(world, tmp, mp):
    mp.setenv("DMC_REGISTRY_URL", f"http://127.0.0.1:{_closed_port()}")
    mp.setenv("DMC_REGISTRY_RETRY_ATTEMPTS", "2")
    mp.setenv("DMC_REGISTRY_RETRY_INITIAL_WAIT", "0.01")


def _setup_registry_auth_failure(world, tmp, mp):
    from tests.fakes.fault_proxy import FaultProxy

    # A registry that refuses every request with 401 (what a wrong bearer token gets).
    proxy = FaultProxy(f"http://127.0.0.1:{_closed_port()}", [], then="401", max_faults=10_000).start()
    world.extra_dirs.append(proxy)
    mp.setenv("DMC_REGISTRY_URL", proxy.url)
    mp.setenv("DMC_REGISTRY_TOKEN", "wrong-token-for-this-registry")


def _setup_read_only_hub_token(world, tmp, mp):
    mp.setenv("HF_TOKEN", READ_TOKEN)


def _setup_disk_full(world, tmp, mp):
    """Artifacts on a 2 MiB tmpfs; the base model manifest fits, the compressed weights (~6 MB) do not."""
    mnt = tmp / "tiny-disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:  # tests run as root (CI, make test); never a silent skip
        pytest.fail(f"disk-full row needs `mount -t tmpfs` (root): {done.stderr.strip()}")
    world.extra_dirs.append(mnt)
    mp.setenv("DMC_ARTIFACT_ROOT", str(mnt))
    from dagster import materialize

    from dagster_project import definitions as d

    assert materialize([d.base_model], partition_key="good2", instance=world.instance,
                       resources=d.defs.resources, run_config=RC_QUIET).success
    _setup_disk_full.root = mnt


SQ_AFTER_GPTQ = ("quant_stage:\n  quant_modifiers:\n    GPTQModifier: {targets: [Linear], scheme: W8A8}\n"
                 "    SmoothQuantModifier: {smoothing_strength: 0.8}\n")
GPTQ_BAD_ARG = "quant_stage:\n  quant_modifiers:\n    GPTQModifier: {targets: [Linear], scheme: W4A16, dampening: 0.1}\n"
IGNORE_ALL = ("quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: [Linear]\n"
              "      scheme: W4A16\n      ignore: ['re:.*layers.*', lm_head]\n")


CASES = [
    # --- models: the Hub (loopback) ---
    Case("hub-model-does-not-exist", "hf-missing", ("base_model",), "HubError",
         r"model 'acme/does-not-exist' does not exist on the Hub", ("hf-missing/base_model.json", "hf-missing/base"),
         layer=_layer_hub("acme/does-not-exist")),
    Case("hub-key-for-missing-repo", "acme--nothing-here", ("base_model",), "HubError",
         r"'acme/nothing-here' does not exist on the Hub", ("acme--nothing-here",)),
    Case("hub-revision-does-not-exist", "hf-badrev", ("base_model",), "HubError",
         r"revision 'no-such-branch' does not exist in acme/tiny", ("hf-badrev",),
         layer=_layer_hub("acme/tiny", "no-such-branch")),
    Case("hub-commit-sha-does-not-exist", "hf-badsha", ("base_model",), "HubError",
         r"revision '0{40}' does not exist in acme/tiny", ("hf-badsha",)),
    Case("hub-gated-without-token", "hf-gated", ("base_model",), "HubError",
         r"acme/gated is gated or private: set HF_TOKEN", ("hf-gated/base_model.json", "hf-gated/base")),
    Case("hub-private-without-token", "hf-private", ("base_model",), "HubError",
         r"'acme/private' does not exist on the Hub \(or it is private and HF_TOKEN is not set\)", ("hf-private",)),
    # --- model keys and repo ids ---
    Case("model-key-parent-traversal", "../../etc", ("base_model",), "CatalogError", r"invalid model key '\.\./\.\./etc'",
         layer=_layer_key("../../etc")),
    Case("model-key-absolute-path", "/etc/passwd", ("base_model",), "CatalogError", r"invalid model key '/etc/passwd'",
         layer=_layer_key("/etc/passwd")),
    Case("model-key-dotdot-in-hub-key", "acme--..", ("base_model",), "CatalogError", r"invalid model key 'acme--\.\.'",
         layer=_layer_key("acme--..")),
    Case("malformed-repo-id-in-catalog", "badrepo", ("base_model",), "CatalogError",
         r"model catalog .* is invalid: .*repo_id '\.\./etc/passwd' is not a Hugging Face repo id",
         ("badrepo",), env={"DMC_MODELS_FILE": "BAD_CATALOG"}),
    Case("unknown-model-key", "nobody", ("base_model",), "CatalogError", r"unknown model 'nobody': not in .*models\.yaml",
         ("nobody",)),
    # --- local model folders ---
    Case("corrupt-safetensors", "corrupt", ("base_model",), "ValueError", r"model\.safetensors is not a valid safetensors file",
         ("corrupt",)),
    Case("truncated-safetensors", "truncated", ("base_model",), "ValueError", r"model\.safetensors is truncated",
         ("truncated",)),
    Case("local-folder-without-config", "no-config", ("base_model",), "FileNotFoundError", r"has no config\.json", ("no-config",)),
    Case("local-folder-missing", "missing-dir", ("base_model",), "FileNotFoundError", r"nowhere has no config\.json", ("missing-dir",)),
    # --- recipes ---
    Case("recipe-name-parent-traversal", f"{GOOD}|../../evil", ("compressed_model",), "RecipeError", r"invalid recipe name '\.\./\.\./evil'",
         (f"{GOOD}/variants/../../evil", "evil"), layer=_layer_recipe("../../evil", "x: 1")),
    Case("recipe-name-absolute-path", f"{GOOD}|/tmp/evil", ("compressed_model",), "RecipeError", r"invalid recipe name '/tmp/evil'",
         layer=_layer_recipe("/tmp/evil", "x: 1")),
    Case("recipe-unknown", f"{GOOD}|no-such-recipe", ("compressed_model",), "RecipeError", r"unknown recipe 'no-such-recipe'",
         (f"{GOOD}/variants/no-such-recipe",)),
    Case("recipe-yaml-invalid", f"{GOOD}|bad-yaml", ("compressed_model",), "RecipeError", r"recipe 'bad-yaml' is not valid YAML",
         (f"{GOOD}/variants/bad-yaml",), setup=_user_recipe("bad-yaml", "quant_stage: [unclosed\n  x: {"),
         layer=_layer_recipe("bad-yaml", "quant_stage: [unclosed\n  x: {")),
    Case("recipe-unknown-scheme", f"{GOOD}|bad-scheme", ("compressed_model",), "RecipeError", r"unknown scheme 'W3A5'",
         (f"{GOOD}/variants/bad-scheme",),
         setup=_user_recipe("bad-scheme", "quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n"
                                          "      targets: [Linear]\n      scheme: W3A5\n"),
         layer=_layer_recipe("bad-scheme", "quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n"
                                           "      targets: [Linear]\n      scheme: W3A5\n")),
    Case("recipe-unknown-modifier", f"{GOOD}|bad-modifier", ("compressed_model",), "RecipeError",
         r"unknown modifier\(s\) MagicQuantModifier", (f"{GOOD}/variants/bad-modifier",),
         setup=_user_recipe("bad-modifier", "quant_stage:\n  quant_modifiers:\n    MagicQuantModifier:\n"
                                            "      targets: [Linear]\n"),
         layer=_layer_recipe("bad-modifier", "quant_stage:\n  quant_modifiers:\n    MagicQuantModifier: {}\n")),
    Case("recipe-without-modifiers", f"{GOOD}|no-modifiers", ("compressed_model",), "RecipeError", r"names no modifiers",
         (f"{GOOD}/variants/no-modifiers",), setup=_user_recipe("no-modifiers", "quant_stage:\n  note: nothing\n"),
         layer=_layer_recipe("no-modifiers", "quant_stage:\n  note: nothing\n")),
    Case("recipe-modifiers-contradict", f"{GOOD}|sq-after", ("compressed_model",), "RecipeError",
         r"recipe 'sq-after' contradicts itself: SmoothQuantModifier comes after GPTQModifier",
         (f"{GOOD}/variants/sq-after",), setup=_user_recipe("sq-after", SQ_AFTER_GPTQ),
         layer=_layer_recipe("sq-after", SQ_AFTER_GPTQ)),
    Case("recipe-refused-by-llmcompressor", f"{GOOD}|bad-arg", ("compressed_model",), "RecipeError",
         r"recipe 'bad-arg': llmcompressor refuses GPTQModifier dampening: Extra inputs are not permitted",
         (f"{GOOD}/variants/bad-arg",), setup=_user_recipe("bad-arg", GPTQ_BAD_ARG),
         layer=_layer_recipe("bad-arg", GPTQ_BAD_ARG)),
    # Only the loaded model shows that these patterns leave nothing to quantize.
    Case("recipe-ignores-every-layer-of-the-model", f"{GOOD}|ignore-all", ("compressed_model",), "RecipeError",
         r"recipe 'ignore-all': QuantizationModifier targets \['Linear'\] minus ignore .* match no module of "
         r"LlamaForCausalLM", (f"{GOOD}/variants/ignore-all",), setup=_user_recipe("ignore-all", IGNORE_ALL)),
    # --- calibration data ---
    Case("calibration-missing-text-column", "good2", ("calibration_dataset",), "CalibrationError",
         r"has no column 'text' \(columns: \['body', 'id'\]\)", ("good2/calibration.json", "good2/calibration"),
         setup=_setup_calibration_file([{"id": i, "body": f"sample {i}"} for i in range(40)], num_samples=16),
         layer=None),
    Case("calibration-too-few-samples", "good2", ("calibration_dataset",), "CalibrationError",
         r"has 3 samples, fewer than the 16 requested", ("good2/calibration.json", "good2/calibration"),
         setup=_setup_calibration_file([{"text": f"sample {i}"} for i in range(3)], num_samples=16)),
    Case("calibration-file-missing", "good2", ("calibration_dataset",), "CalibrationError", r"calibration file '/no/such/file\.jsonl' does not exist",
         ("good2/calibration.json", "good2/calibration"), run_config=_calib(source="/no/such/file.jsonl"),
         layer=_layer_calibration(source="/no/such/file.jsonl")),
    Case("calibration-num-samples-zero", "good2", ("calibration_dataset",), "ValidationError", r"num_samples.*greater than or equal to 1",
         ("good2/calibration.json", "good2/calibration"), run_config=_calib(num_samples=0)),
    Case("calibration-max-seq-length-too-small", "good2", ("calibration_dataset",), "ValidationError",
         r"max_seq_length.*greater than or equal to 16", ("good2/calibration.json", "good2/calibration"),
         run_config=_calib(max_seq_length=1)),
    # --- evaluation ---
    Case("evaluation-unknown-task-set", "good2", ("base_evaluation",), "ValueError", r"unknown task set 'no-such-tasks'",
         ("good2/base_eval",), run_config={"ops": {"base_evaluation": {"config": {"task_set": "no-such-tasks"}}}}),
    Case("evaluation-unknown-task-set-in-catalog", "bad-tasks", ("base_model", "base_evaluation"), "ValueError",
         r"unknown task set 'no-such-task-set'", ("bad-tasks/base_eval",)),
    Case("evaluation-recovery-threshold-negative", f"{GOOD}|{SPARE_RECIPE}", ("evaluation_report",), "ValidationError",
         r"recovery_threshold.*greater than 0", run_config={"ops": {"evaluation_report": {"config": {"recovery_threshold": -1}}}}),
    Case("evaluation-limit-zero", "good2", ("base_evaluation",), "ValidationError",
         r"limit.*greater than or equal to 1", ("good2/base_eval",),
         run_config={"ops": {"base_evaluation": {"config": {"limit": 0}}}}),
    # --- publication ---
    # The step turns a registry error into one Dagster Failure line that starts with its class name.
    Case("registry-unreachable", f"{GOOD}|{SPARE_RECIPE}", ("registry_entry",), "Failure",
         r"RegistryUnavailable: model registry at http://127\.0\.0\.1:\d+ unreachable .*gave up after 2 attempt",
         setup=_setup_unreachable_registry),
    Case("registry-auth-failure", f"{GOOD}|{SPARE_RECIPE}", ("registry_entry",), "Failure",
         r"RegistryAuthError: .*refused the request \(401 .*check the bearer token", setup=_setup_registry_auth_failure),
    Case("hub-token-without-write-access", f"{GOOD}|{SPARE_RECIPE}", ("hub_release",), "HubPermissionError",
         r"HF_TOKEN is read-only or has no write access", hub_publish=True, setup=_setup_read_only_hub_token),
    Case("hub-publish-without-token", f"{GOOD}|{SPARE_RECIPE}", ("hub_release",), "MissingTokenError",
         r"HF_TOKEN is not set; publication needs a write token", hub_publish=True),
    # --- disk full while saving the compressed variant ---
    Case("disk-full-while-saving", f"good2|{GOOD_RECIPE}", ("compressed_model",), "SafetensorError",
         r"I/O error: No space left on device \(os error 28\)",
         setup=_setup_disk_full),
]


def _errors(result) -> list[tuple[str, str]]:
    """(class name, message) of every error in the run's step failures, causes included."""
    found = []

    def walk(err):
        while err is not None:
            found.append((err.cls_name, err.message))
            err = err.cause or err.context

    for ev in result.get_step_failure_events():
        walk(ev.step_failure_data.error)
    return found


def _resources(case: Case):
    from dagster_project import definitions as d
    from dagster_project.resources.hf_hub import HuggingFaceHubResource

    resources = dict(d.defs.resources)
    if case.hub_publish:
        resources["hub"] = HuggingFaceHubResource(publish_enabled=True, publish_organization="dmc")
    return resources


def _materialize(world: World, case: Case):
    from dagster import MultiPartitionKey, materialize

    from dagster_project import definitions as d

    if "|" in case.partition:
        model, recipe = case.partition.split("|", 1)
        world.instance.add_dynamic_partitions("models", [model])
        world.instance.add_dynamic_partitions("recipes", [recipe])
        key = MultiPartitionKey({"model": model, "recipe": recipe})
    else:
        world.instance.add_dynamic_partitions("models", [case.partition])
        key = case.partition
    assets = [getattr(d, name) for name in case.assets]
    config = {**RC_QUIET, **case.run_config}
    return materialize(assets, partition_key=key, instance=world.instance, resources=_resources(case),
                       run_config=config, raise_on_error=False)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world: World, tmp_path, monkeypatch):
    if case.env.get("DMC_MODELS_FILE") == "BAD_CATALOG":
        bad = tmp_path / "models.yaml"
        bad.write_text(world.models_file.read_text() + "- key: badrepo\n  source: hf\n  repo_id: ../etc/passwd\n")
        monkeypatch.setenv("DMC_MODELS_FILE", str(bad))
    for k, v in case.env.items():
        if k != "DMC_MODELS_FILE":
            monkeypatch.setenv(k, v)
    artifacts_root = world.artifacts
    try:
        if case.setup is not None:
            case.setup(world, tmp_path, monkeypatch)
            case.run_config = getattr(case.setup, "run_config", case.run_config)
            if case.setup is _setup_disk_full:
                artifacts_root = _setup_disk_full.root
        outcome = _materialize(world, case)
        assert not getattr(outcome, "success", False), f"{case.id}: the run succeeded"
        errors = _errors(outcome)
        named = [(cls, msg) for cls, msg in errors if cls == case.error and re.search(case.match, msg, re.I | re.S)]
        assert named, f"{case.id}: no {case.error} naming the problem ({case.match!r}) in:\n" + \
            "\n".join(f"{cls}: {msg}" for cls, msg in errors)
        # The owning layer raises the same error on its own.
        if case.layer is not None:
            with pytest.raises(Exception, match=re.compile(case.match, re.I | re.S)) as raised:
                case.layer()
            assert type(raised.value).__name__ == case.error, f"{case.id}: layer raised {raised.value!r}"
        # No partial artifact for this partition.
        models = artifacts_root / "models"
        for rel in case.absent:  # (an empty parent folder holds nothing and is not an artifact)
            target = models / rel
            partial = target.is_file() or (target.is_dir() and any(p.is_file() for p in target.rglob("*")))
            assert not partial, f"{case.id}: partial artifact {rel}"
        leftovers = [p for p in artifacts_root.rglob("*") if p.name.startswith((".tmp-", ".old-", ".trash-"))]
        assert not leftovers, f"{case.id}: temporary folders left behind: {leftovers}"
        if "|" in case.partition and case.partition.split("|")[0] != GOOD:
            model, recipe = case.partition.split("|", 1)
            assert not (models / model / "variants" / recipe).exists()
        for escaped in (Path("/evil"), Path("/tmp/evil"), Path("/tmp/evil.yaml"), world.var / "evil"):
            assert not escaped.exists(), f"{case.id}: wrote outside the artifact root: {escaped}"
        # Nothing published; the good partition is intact.
        assert _registry_rows(world.var) == world.good_registry
        assert world.hub.models == world.hub_repos
        assert _snapshot(world.artifacts / "models" / GOOD) == world.good_snapshot
    finally:
        for extra in world.extra_dirs:
            if hasattr(extra, "stop"):
                extra.stop()
            else:
                subprocess.run(["umount", str(extra)], check=False)
        world.extra_dirs.clear()


# ---------------------------------------------------------------------------------- disk full, without mount


_FSIZE_SCRIPT = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)           # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))
sys.path.insert(0, sys.argv[3])
from dagster_project.compression.oneshot_runner import compress
from dagster_project.compression.recipes import resolve_builtin
try:
    compress(Path(sys.argv[1]), resolve_builtin("w4a16-rtn", "LlamaForCausalLM"), Path(sys.argv[2]), log=lambda m: None)
except OSError as exc:
    print("OSERROR", exc, flush=True)
    sys.exit(3)
except Exception as exc:
    print("ERROR", type(exc).__name__, exc, flush=True)
    sys.exit(4)
"""


@pytest.mark.slow
def test_disk_full_rlimit_fsize(demo_model, tmp_path):
    """The compress layer alone under a 2 MiB file-size limit (EFBIG, no mount needed): the failed
    re-compression leaves no temp folder and the previous variant at the path byte-for-byte intact."""
    out = tmp_path / "variants" / "w4a16-rtn"
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"previous weights" * 1000)
    (out / "dmc_variant.json").write_text('{"recipe": "w4a16-rtn"}')
    before = _snapshot(out)
    done = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, str(demo_model), str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    # safetensors reports the write error as its own SafetensorError, naming the OS error.
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"ERROR SafetensorError .*File too large \(os error 27\)", done.stdout), done.stdout
    assert _snapshot(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["w4a16-rtn"]  # no .tmp-* / .old-* left behind
