"""The vLLM backend: the exact invocation, the standalone runner, and the Pipes plumbing end to end.

vLLM's wheel is CUDA-only, so the end-to-end tests launch `fake_vllm_lm_eval.py` through the very
same code path (`$DMC_VLLM_PYTHON` = this Python, `$DMC_VLLM_RUNNER` = the stand-in): the real
runner, real `dagster_pipes`, real `lm_eval.simple_evaluate`; only the vLLM model object is
replaced by lm-eval's `hf` model on CPU."""


import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dagster import AssetExecutionContext, PipesSubprocessClient

from dagster_project.evaluation import vllm_runner
from dagster_project.resources import vllm_pipes
from dagster_project.evaluation.tasks import resolve_task_set
from dagster_project.resources.vllm_pipes import VllmSettings, build_invocation

from .conftest import add_partitions, eval_run_config, materialize_assets, read, variant_key

RUNNER = Path(vllm_runner.__file__)


def test_exact_invocation():
    environ = {
        "DMC_VLLM_PYTHON": "/opt/vllm/bin/python", "CUDA_VISIBLE_DEVICES": "2,3", "VLLM_ATTENTION_BACKEND": "FLASHINFER",
        "HF_HOME": "/cache/hf", "HF_TOKEN": "hf_secret_token_value", "PYTHONPATH": "/orchestrator/site",
        "DMC_REGISTRY_TOKEN": "registry-secret",
    }
    inv = build_invocation(
        "/models/v/w4a16", resolve_task_set("openllm-v1"), "/models/v/w4a16/lm_eval_results.json",
        settings=VllmSettings(tensor_parallel_size=2, extra_model_args={"enable_chunked_prefill": "True"}),
        include_paths=["/models/eval_tasks/openllm-v1-abc"], environ=environ,
    )
    assert inv.command == [
        "/opt/vllm/bin/python", str(RUNNER),
        "--pretrained", "/models/v/w4a16",
        "--task", "arc_challenge:25", "--task", "gsm8k:5", "--task", "hellaswag:10", "--task", "mmlu:5",
        "--task", "truthfulqa_mc2:0", "--task", "winogrande:5",
        "--output", "/models/v/w4a16/lm_eval_results.json",
        "--model", "vllm", "--dtype", "bfloat16", "--max-model-len", "4096", "--gpu-memory-utilization", "0.8",
        "--add-bos-token", "true", "--tensor-parallel-size", "2", "--batch-size", "auto", "--seed", "1234",
        "--speed-tokens", "32", "--model-arg", "enable_chunked_prefill=True",
        "--include-path", "/models/eval_tasks/openllm-v1-abc",
    ]
    assert inv.env == {
        "CUDA_VISIBLE_DEVICES": "2,3", "VLLM_ATTENTION_BACKEND": "FLASHINFER", "HF_HOME": "/cache/hf",
        "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_EVALUATE_OFFLINE": "0",
        "VLLM_WORKER_MULTIPROC_METHOD": "spawn", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "PYTHONPATH": "",
    }
    # Tokens stay in the inherited environment: never in arguments, never copied into env.
    assert not any("secret" in part for part in inv.command)
    assert "HF_TOKEN" not in inv.env and "DMC_REGISTRY_TOKEN" not in inv.env
    # What the runner makes of these arguments: RHOAI's model_args.
    settings = vllm_runner.resolve_settings(inv.command[2:], {})
    assert vllm_runner.model_args_string(settings) == (
        "pretrained=/models/v/w4a16,dtype=bfloat16,max_model_len=4096,gpu_memory_utilization=0.8,"
        "add_bos_token=True,tensor_parallel_size=2,enable_chunked_prefill=True")
    assert settings["tasks"][1] == {"name": "gsm8k", "num_fewshot": 5, "limit": None}
    assert settings["batch_size"] == "auto" and settings["include_defaults"] is True


def test_offline_task_set_invocation_and_default_python(monkeypatch):
    monkeypatch.delenv("DMC_VLLM_PYTHON", raising=False)
    monkeypatch.delenv("DMC_VLLM_RUNNER", raising=False)
    inv = build_invocation("/m", resolve_task_set("quick"), "/o.json", limit=20, environ={})
    assert inv.command[:2] == ["/opt/vllm/bin/python", str(RUNNER)]
    assert inv.command[inv.command.index("--task") + 1] == "gsm8k:5:250"
    assert inv.command[-2:] == ["--limit", "20"]
    demo = build_invocation("/m", resolve_task_set("demo"), "/o.json", environ={})
    assert "--no-default-tasks" in demo.command
    assert demo.env["HF_HUB_OFFLINE"] == demo.env["HF_DATASETS_OFFLINE"] == "1"


def test_secret_in_arguments_is_refused():
    with pytest.raises(ValueError, match="HF_TOKEN"):
        build_invocation("/models/hf_abc123", resolve_task_set("demo"), "/o.json", environ={"HF_TOKEN": "hf_abc123"})


def test_settings_precedence_and_validation():
    extras = {"vllm_eval": {"pretrained": "/from/extras", "tasks": ["a:1"], "output": "/x.json",
                            "gpu_memory_utilization": 0.5, "dtype": "float16"}}
    s = vllm_runner.resolve_settings(["--dtype", "auto", "--batch-size", "16"], extras)
    assert (s["pretrained"], s["dtype"], s["gpu_memory_utilization"], s["batch_size"]) == ("/from/extras", "auto", 0.5, 16)
    assert s["tasks"] == [{"name": "a", "num_fewshot": 1, "limit": None}]
    with pytest.raises(ValueError, match="unknown vllm_eval extras"):
        vllm_runner.resolve_settings([], {"vllm_eval": {"gpu_mem": 1}})
    with pytest.raises(ValueError, match="missing setting 'output'"):
        vllm_runner.resolve_settings(["--pretrained", "/m", "--task", "a"], {})
    with pytest.raises(ValueError, match="commas"):
        vllm_runner.model_args_string({**s, "pretrained": "/a,b"})


def test_runner_imports_only_stdlib_dagster_pipes_and_lm_eval():
    allowed = set(sys.stdlib_module_names) | {"dagster_pipes", "lm_eval", "__future__"}
    roots = set()
    for node in ast.walk(ast.parse(RUNNER.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots <= allowed, roots - allowed
    # Loaded as the vLLM environment loads it (a plain script): nothing heavy comes along.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('vllm_runner', {str(RUNNER)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "m.resolve_settings(['--pretrained', '/m', '--task', 'a', '--output', '/o'], {})\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in "
        "('dagster', 'dagster_project', 'llmcompressor', 'torch', 'transformers', 'compressed_tensors')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runner_cli_help_as_script():
    out = subprocess.run([sys.executable, str(RUNNER), "--help"], capture_output=True, text=True, check=True)
    assert "--gpu-memory-utilization" in out.stdout


def _events_text(instance, run_id: str) -> str:
    return "\n".join(str(getattr(e, "user_message", "")) for e in instance.all_logs(run_id))


@pytest.mark.slow
def test_vllm_backend_through_pipes_end_to_end(demo_model, project_state, dagster_instance, fake_vllm, monkeypatch):
    """base_evaluation and evaluation_report with backend=vllm: the runner is launched via
    PipesSubprocessClient, streams its logs, writes lm-eval results; the asset parses scores,
    recovery and approval from them."""
    from dagster_project import definitions as d

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    model, recipe = "demo-llama", "w8a16-rtn"
    add_partitions(dagster_instance, model, [recipe])
    cfg = eval_run_config(backend="vllm", limit=12)
    res = materialize_assets(dagster_instance, [d.base_model, d.base_evaluation], model, cfg)
    logs = _events_text(dagster_instance, res.run_id)
    assert "model loaded in" in logs and re.search(r"dmc_jargon_lastword: .*acc,none=", logs)  # streamed through Pipes
    # progress per batch of requests from the runner's process, through Pipes: the first batch and the total
    first = re.search(r"lm-eval loglikelihood: batch 1/(\d+) \((\d+) requests\)", logs)
    total = re.search(r"lm-eval loglikelihood: (\d+) requests in (\d+) batches", logs)
    assert first and total and int(first.group(2)) == int(total.group(1)) > 0, logs[-2000:]
    rec = read(fake_vllm)
    assert rec["model"] == "vllm"
    assert rec["model_args"].endswith(",dtype=bfloat16,max_model_len=4096,gpu_memory_utilization=0.8,"
                                      "add_bos_token=True,tensor_parallel_size=1")
    assert rec["env"]["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    assert rec["env"]["HF_HUB_OFFLINE"] == "1" and rec["env"]["CUDA_VISIBLE_DEVICES"] == "7"
    assert rec["env"]["PYTHONPATH"] == ""
    assert rec["has_hf_token"] and not any("hf_not_a_real_token" in a for a in rec["argv"])
    assert rec["modules"] == []  # the runner pulled in no dagster / torch / llmcompressor before the model

    key = variant_key(model, recipe)
    res = materialize_assets(dagster_instance, [d.compressed_model, d.evaluation_report, d.loads_and_generates,
                                                d.recovery_meets_threshold, d.size_reduced], key, cfg)
    assert res.success
    vdir = project_state / "artifacts/models" / model / "variants" / recipe
    report = read(vdir / "evaluation.json")
    assert report["backend"] == "vllm" and report["limit"] == 12
    assert report["eval"]["backend"] == "vllm"
    tasks = {(r["task"], r["metric"]) for r in report["recoveries"]}
    assert {("dmc_jargon_ppl", "token_perplexity"), ("dmc_jargon_lastword", "acc")} <= tasks
    # INT8 weights barely move a model: perplexity within 1 %, the average at or above the 98 % demo bar.
    by_task = {(r["task"], r["metric"]): r["recovery_pct"] for r in report["recoveries"]}
    print("W8A16 through the vLLM path:", report["average_recovery"], by_task)
    assert by_task[("dmc_jargon_ppl", "token_perplexity")] >= 99.0, by_task
    assert report["average_recovery"] is not None and report["average_recovery"] >= 98.0, by_task
    assert report["speed"]["new_tokens"] >= 1 and report["approval"]["checks"]["loads_and_generates"]["passed"]
    raw = read(vdir / "lm_eval_results.json")  # the runner's own results, stored with the variant
    assert raw["config"]["model"] == "vllm" and "dmc_jargon_lastword" in raw["results"]
    assert raw["n-shot"] and raw["versions"]
    base_files = list((project_state / "artifacts/models" / model / "base_eval").glob("*-vllm*.lm_eval.json"))
    assert len(base_files) == 1


def test_runner_failure_surfaces_in_dagster(fake_vllm, monkeypatch, tmp_path):
    from dagster import DagsterInstance, asset, materialize
    from dagster._core.errors import DagsterPipesExecutionError

    monkeypatch.setenv("FAKE_VLLM_MODE", "fail")

    @asset
    def vllm_eval(context: AssetExecutionContext, vllm_pipes_client: PipesSubprocessClient):
        vllm_pipes.evaluate_vllm(context, vllm_pipes_client, tmp_path / "model", resolve_task_set("demo"),
                                 tmp_path / "out.json")

    with DagsterInstance.ephemeral() as instance:
        res = materialize([vllm_eval], resources={"vllm_pipes_client": PipesSubprocessClient()}, instance=instance,
                          raise_on_error=False)
        assert not res.success
        failure = res.get_step_failure_events()[0].event_specific_data.error
        assert DagsterPipesExecutionError.__name__ in failure.to_string()
        logs = "\n".join(str(e.dagster_event.event_specific_data) if e.dagster_event else e.user_message
                         for e in instance.all_logs(res.run_id))
        assert "vLLM engine failed to start" in logs  # the runner's exception, reported through Pipes


def test_missing_vllm_environment_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("DMC_VLLM_PYTHON", str(tmp_path / "no-venv/bin/python"))
    inv = build_invocation(tmp_path, resolve_task_set("demo"), tmp_path / "o.json")

    class Ctx:
        class log:  # noqa: N801
            info = staticmethod(lambda m: None)

    with pytest.raises(FileNotFoundError, match="DMC_VLLM_PYTHON"):
        vllm_pipes.run_subprocess(Ctx, object(), inv)


def test_read_results_prefers_pipes_message(tmp_path):
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"results": {"t": {"acc,none": 0.1}}}))
    msg = {"kind": "lm_eval_results", "results": {"results": {"t": {"acc,none": 0.9}}}}
    assert vllm_pipes.read_results([msg], out)["results"]["t"]["acc,none"] == 0.9
    assert vllm_pipes.read_results([], out)["results"]["t"]["acc,none"] == 0.1
    with pytest.raises(RuntimeError, match="no results"):
        vllm_pipes.read_results([], tmp_path / "missing.json")


def test_k8s_pod_for_pipes_k8s_client():
    """The same invocation as a PipesK8sClient pod (built with dagster-k8s's own build_pod_body,
    validated against the Kubernetes schema; not launched)."""
    import kubernetes_validate

    from dagster_project.k8s import Placement

    placement = Placement(eval_image="quay.io/acme/dmc-eval:1.0", node_selector={"nvidia.com/gpu.present": "true"})
    inv = build_invocation("/models/artifacts/models/m/variants/w4a16", resolve_task_set("openllm-v1"),
                           "/models/artifacts/models/m/variants/w4a16/lm_eval_results.json",
                           environ={"CUDA_VISIBLE_DEVICES": "0", "HF_TOKEN": "hf_x"})
    kwargs = vllm_pipes.k8s_run_kwargs(inv, placement=placement, model_size_gb=8, models_pvc="dmc-models")
    assert kwargs["image"] == "quay.io/acme/dmc-eval:1.0"
    assert kwargs["command"][:3] == ["python", "-m", "dagster_project.evaluation.vllm_runner"]
    assert kwargs["command"][3:] == inv.command[2:]  # same arguments as the subprocess
    # What PipesK8sClient.run(**kwargs) creates: dagster-k8s's own build_pod_body, Pipes env added.
    from dagster_k8s.pipes import build_pod_body
    from kubernetes.client import ApiClient

    body = build_pod_body(pod_name="dmc-vllm-eval", image=kwargs["image"], command=kwargs["command"],
                          env_vars={**kwargs["env"], "DAGSTER_PIPES_CONTEXT": "e30=", "DAGSTER_PIPES_MESSAGES": "e30="},
                          base_pod_meta=kwargs["base_pod_meta"], base_pod_spec=kwargs["base_pod_spec"])
    pod = {"apiVersion": "v1", "kind": "Pod", **ApiClient().sanitize_for_serialization(body)}
    kubernetes_validate.validate(pod, "1.33.0", strict=True)
    spec = pod["spec"]
    (c,) = spec["containers"]
    assert c["image"] == "quay.io/acme/dmc-eval:1.0" and spec["restartPolicy"] == "Never"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["resources"]["requests"]["memory"] == "20Gi"
    env = {e["name"]: e for e in c["env"]}
    assert env["VLLM_WORKER_MULTIPROC_METHOD"]["value"] == "spawn"
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-hub-secret"
    assert "DMC_REGISTRY_TOKEN" not in env  # GPU pods never see the registry token
    assert "CUDA_VISIBLE_DEVICES" not in env and "PYTHONPATH" not in env  # this machine's, not the pod's
    assert env["DAGSTER_PIPES_CONTEXT"]["value"] == "e30="
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "models": "/models"}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["models"]["persistentVolumeClaim"]["claimName"] == "dmc-models"
    assert vols["dshm"]["emptyDir"]["medium"] == "Memory"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "hf_x" not in json.dumps(pod)
