"""lm-eval with the vLLM backend, as a separate process that reports back through Dagster Pipes.

vLLM pins torch / compressed-tensors versions that conflict with llmcompressor, so it lives in its
own environment (the evaluation image, or a venv such as /opt/vllm). This file is that
environment's entry point: it imports only the standard library, `dagster_pipes` and `lm_eval`
(never dagster, torch or llmcompressor), and is run as a plain script
(`python .../vllm_runner.py ARGS`) or as `python -m dagster_project.evaluation.vllm_runner ARGS`.

Settings come from, in increasing priority: defaults, the Pipes extras (key ``vllm_eval``), and
the command line. Output:
- log lines streamed to Dagster (`pipes.log.info`), lm-eval's own log records included;
- an lm-eval-shaped results JSON (``results``, ``higher_is_better``, ``n-shot``, ``versions``,
  ``config``) at ``--output``, plus generation speed;
- a Pipes custom message ``{"kind": "lm_eval_results", "output": PATH, "results": ...}`` carrying
  the same payload, for orchestrators that cannot read the runner's filesystem.

Without Pipes (no DAGSTER_PIPES_* environment) it logs to stderr and still writes ``--output``.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder would come first on sys.path, and its siblings (tasks.py,
# report.py, ...) could shadow other packages' modules in the vLLM environment.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from typing import Any, Callable  # noqa: E402

EXTRAS_KEY = "vllm_eval"
MESSAGE_KIND = "lm_eval_results"
SPEED_PROMPT = "The Jargon File is a glossary of hacker slang. A hacker is"

# Defaults as in RHOAI's / RedHatAI's lm-eval + vLLM examples.
DEFAULTS: dict[str, Any] = {
    "model": "vllm",
    "dtype": "bfloat16",
    "max_model_len": 4096,
    "gpu_memory_utilization": 0.8,
    "add_bos_token": True,
    "tensor_parallel_size": 1,
    "batch_size": "auto",
    "model_arg": [],
    "include_path": [],
    "include_defaults": True,
    "limit": None,
    "seed": 1234,
    "speed_tokens": 32,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vllm_runner", description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrained", help="model folder (compressed-tensors or plain HF checkpoint)")
    p.add_argument("--task", action="append", dest="task",
                   help="NAME[:NUM_FEWSHOT[:LIMIT]], repeatable (e.g. arc_challenge:25, gsm8k:5:250)")
    p.add_argument("--output", help="where to write the lm-eval-shaped results JSON")
    p.add_argument("--model", help="lm-eval model type (default vllm)")
    p.add_argument("--dtype")
    p.add_argument("--max-model-len", type=int, dest="max_model_len")
    p.add_argument("--gpu-memory-utilization", type=float, dest="gpu_memory_utilization")
    p.add_argument("--add-bos-token", choices=["true", "false"], dest="add_bos_token")
    p.add_argument("--tensor-parallel-size", type=int, dest="tensor_parallel_size")
    p.add_argument("--batch-size", dest="batch_size", help="'auto' or an integer")
    p.add_argument("--model-arg", action="append", dest="model_arg", help="extra KEY=VALUE for model_args, repeatable")
    p.add_argument("--include-path", action="append", dest="include_path", help="task YAML folder, repeatable")
    p.add_argument("--no-default-tasks", action="store_false", dest="include_defaults", default=None,
                   help="do not index lm-eval's built-in tasks (offline task sets)")
    p.add_argument("--limit", type=int, help="cap examples per task (overrides per-task limits)")
    p.add_argument("--seed", type=int)
    p.add_argument("--speed-tokens", type=int, dest="speed_tokens", help="tokens of the speed probe; 0 = none")
    return p


def resolve_settings(argv: list[str] | None, extras: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults < Pipes extras[`vllm_eval`] < command line."""
    settings = dict(DEFAULTS)
    from_extras = dict((extras or {}).get(EXTRAS_KEY) or {})
    unknown = set(from_extras) - set(DEFAULTS) - {"pretrained", "tasks", "output", "task_set"}
    if unknown:
        raise ValueError(f"unknown {EXTRAS_KEY} extras: {sorted(unknown)}")
    settings.update(from_extras)
    args = build_parser().parse_args(argv)
    for key, value in vars(args).items():
        if value is None:
            continue
        if key == "task":
            settings["tasks"] = [parse_task(t) for t in value]
        elif key == "add_bos_token":
            settings[key] = value == "true"
        else:
            settings[key] = value
    settings["tasks"] = [parse_task(t) if isinstance(t, str) else dict(t) for t in settings.get("tasks") or []]
    for required in ("pretrained", "tasks", "output"):
        if not settings.get(required):
            raise ValueError(f"missing setting {required!r} (command line or Pipes extras)")
    bs = settings["batch_size"]
    settings["batch_size"] = int(bs) if isinstance(bs, str) and bs.isdigit() else bs
    return settings


def parse_task(text: str) -> dict[str, Any]:
    name, *rest = text.split(":")
    shots = int(rest[0]) if rest and rest[0] != "" else None
    limit = int(rest[1]) if len(rest) > 1 and rest[1] != "" else None
    return {"name": name, "num_fewshot": shots, "limit": limit}


def model_args_string(s: dict[str, Any]) -> str:
    """lm-eval `model_args`, e.g. pretrained=/m,dtype=bfloat16,max_model_len=4096,...

    lm-eval splits on commas, so values may not contain one."""
    parts = [
        ("pretrained", s["pretrained"]),
        ("dtype", s["dtype"]),
        ("max_model_len", s["max_model_len"]),
        ("gpu_memory_utilization", s["gpu_memory_utilization"]),
        ("add_bos_token", bool(s["add_bos_token"])),
        ("tensor_parallel_size", s["tensor_parallel_size"]),
    ]
    extra = [tuple(kv.split("=", 1)) for kv in s.get("model_arg") or []]
    out = []
    for key, value in parts + extra:
        if value is None:
            continue
        text = str(value)
        if "," in text:
            raise ValueError(f"model arg {key}={text!r}: lm-eval cannot take commas in model_args")
        out.append(f"{key}={text}")
    return ",".join(out)


def create_lm(model: str, model_args: str, batch_size: Any):
    """The LM object simple_evaluate would build from `model` + `model_args` (built once, reused)."""
    import lm_eval.api.registry

    return lm_eval.api.registry.get_model(model).create_from_arg_string(
        model_args, {"batch_size": batch_size, "max_batch_size": None, "device": None}
    )


class BatchProgress:
    """One log line per batch of lm-eval requests, at most one every `interval_s` (first and last always)."""

    def __init__(self, log: Callable[[str], None], interval_s: float = 10.0):
        self.log, self.interval_s = log, interval_s
        self.kind, self.requests, self.expected, self.done, self.started, self.last = "", 0, 0, 0, 0.0, 0.0

    def begin(self, kind: str, requests: int, batch_size: Any) -> None:
        self.kind, self.requests, self.done = kind, requests, 0
        self.expected = math.ceil(requests / batch_size) if isinstance(batch_size, int) and batch_size > 0 else 0
        self.started = self.last = time.perf_counter()

    def batch(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.done == 1 or now - self.last >= self.interval_s:
            self.last = now
            of = f"/{self.expected}" if self.expected else ""
            self.log(f"lm-eval {self.kind}: batch {self.done}{of} ({self.requests} requests), {now - self.started:.0f} s")

    def end(self) -> None:
        self.log(f"lm-eval {self.kind}: {self.requests} requests in {self.done} batches, "
                 f"{time.perf_counter() - self.started:.0f} s")


def watch_batches(lm: Any, log: Callable[[str], None], interval_s: float = 10.0) -> BatchProgress:
    """Progress for any lm-eval LM object (this runner's vLLM, the in-process hf backend): its request
    methods mark begin/end, and the per-batch model calls lm-eval's HFLM and VLLM make
    (`_model_call`, `_model_generate`) count batches. Wraps this instance's attributes only."""
    progress = BatchProgress(log, interval_s)

    def around_requests(kind: str, method: Callable) -> Callable:
        def run(requests, *args, **kwargs):
            progress.begin(kind, len(requests), getattr(lm, "batch_size", None))
            try:
                return method(requests, *args, **kwargs)
            finally:
                progress.end()
        return run

    def counting(method: Callable) -> Callable:
        def call(*args, **kwargs):
            out = method(*args, **kwargs)
            progress.batch()
            return out
        return call

    for kind in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        if callable(getattr(lm, kind, None)):
            setattr(lm, kind, around_requests(kind, getattr(lm, kind)))
    for name in ("_model_call", "_model_generate"):
        if callable(getattr(lm, name, None)):
            setattr(lm, name, counting(getattr(lm, name)))
    return progress


def speed_gen_kwargs(model: str, tokens: int) -> dict[str, Any]:
    # vLLM's SamplingParams says min_tokens; transformers' generate says min_new_tokens.
    minimum = {"min_tokens": tokens} if model == "vllm" else {"min_new_tokens": tokens}
    return {"until": [], "max_gen_toks": tokens, "do_sample": False, "temperature": 0.0, **minimum}


def measure_speed(lm, model: str, tokens: int) -> dict[str, Any]:
    """Greedy generation latency through lm-eval's own `generate_until` (best of 3 after a warm-up)."""
    from lm_eval.api.instance import Instance

    kwargs = speed_gen_kwargs(model, tokens)
    request = Instance(request_type="generate_until", doc={}, arguments=(SPEED_PROMPT, kwargs), idx=0)
    lm.generate_until([request], disable_tqdm=True)
    best, text = float("inf"), ""
    for _ in range(3):
        t0 = time.perf_counter()
        (text,) = lm.generate_until([request], disable_tqdm=True)
        best = min(best, time.perf_counter() - t0)
    try:
        new_tokens = len(lm.tok_encode(text)) if text else 0
    except Exception:  # noqa: BLE001 - an LM without tok_encode still reports text
        new_tokens = len(text.split())
    return {"latency_seconds": round(best, 4), "tokens_per_second": round(new_tokens / best, 1) if best else 0.0,
            "new_tokens": int(new_tokens), "sample": text}


def run(settings: dict[str, Any], log: Callable[[str], None],
        make_lm: Callable[[str, str, Any], Any] = create_lm) -> dict[str, Any]:
    """Evaluate every task (grouped by few-shot count and limit) with one LM; return the merged results."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    model_args = model_args_string(settings)
    log(f"lm-eval {_version('lm_eval')} model={settings['model']} model_args={model_args}")
    t0 = time.perf_counter()
    lm = make_lm(settings["model"], model_args, settings["batch_size"])
    load_seconds = round(time.perf_counter() - t0, 3)
    log(f"model loaded in {load_seconds} s")
    progress = watch_batches(lm, log)  # vLLM's own tqdm bars never reach Dagster: one line per batch instead

    manager = TaskManager(include_path=list(settings["include_path"]) or None,
                          include_defaults=bool(settings["include_defaults"]))
    groups: dict[tuple, list[str]] = {}
    for task in settings["tasks"]:
        key = (task.get("num_fewshot"), settings["limit"] or task.get("limit"))
        groups.setdefault(key, []).append(task["name"])
    merged: dict[str, Any] = {"results": {}, "higher_is_better": {}, "n-shot": {}, "versions": {}, "configs": {}}
    for (shots, limit), names in groups.items():
        log(f"evaluating {', '.join(names)} (num_fewshot={shots}, limit={limit})")
        t1 = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model=lm, model_args=model_args, tasks=names, num_fewshot=shots, batch_size=settings["batch_size"],
            limit=limit, task_manager=manager, log_samples=False,
            random_seed=0, numpy_random_seed=settings["seed"], torch_random_seed=settings["seed"],
            fewshot_random_seed=settings["seed"],
        )
        if out is None:  # non-zero ranks under a multi-process launcher
            continue
        for section in merged:
            merged[section].update(out.get(section) or {})
        for task, metrics in out["results"].items():
            shown = [f"{k}={v:.4g}" for k, v in metrics.items()
                     if isinstance(v, float) and "," in k and "_stderr" not in k]
            log(f"{task}: {', '.join(shown)} ({time.perf_counter() - t1:.1f} s)")
    speed = None
    if settings["speed_tokens"]:
        progress.log = lambda _line: None  # the speed probe's single requests are not worth a line each
        speed = {"load_seconds": load_seconds, **measure_speed(lm, settings["model"], int(settings["speed_tokens"])),
                 "device": f"{settings['model']}"}
        log(f"generation: {speed['new_tokens']} tokens in {speed['latency_seconds']} s "
            f"({speed['tokens_per_second']} tokens/s)")
    merged["config"] = {"model": settings["model"], "model_args": model_args, "batch_size": settings["batch_size"],
                        "tasks": settings["tasks"], "include_path": list(settings["include_path"]),
                        "limit": settings["limit"], "seed": settings["seed"]}
    merged["lm_eval_version"] = _version("lm_eval")
    merged["eval_seconds"] = round(time.perf_counter() - started, 2)
    merged["speed"] = speed
    return merged


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    # dagster_project.atomic's twin: this script runs in the vLLM environment without the package.
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
    os.replace(tmp, path)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist.replace("_", "-"))
    except PackageNotFoundError:
        return ""


class _PipesLogHandler(logging.Handler):
    """lm-eval's log records (task loading, warnings) → Dagster's event log."""

    def __init__(self, pipes_log) -> None:
        super().__init__(logging.INFO)
        self.pipes_log = pipes_log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            (self.pipes_log.warning if record.levelno >= logging.WARNING else self.pipes_log.info)(msg)
        except Exception:  # noqa: BLE001 - logging must never break the evaluation
            pass


def main(argv: list[str] | None = None, make_lm: Callable[[str, str, Any], Any] = create_lm) -> int:
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    with ExitStack() as stack:
        if os.environ.get(DAGSTER_PIPES_CONTEXT_ENV_VAR):
            pipes = stack.enter_context(open_dagster_pipes())
            extras = dict(pipes.extras)
            log = pipes.log.info
            handler = _PipesLogHandler(pipes.log)
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            for name in ("lm-eval", "lm_eval"):
                logging.getLogger(name).addHandler(handler)
        else:
            pipes, extras = None, {}
            logging.basicConfig(level=logging.INFO, stream=sys.stderr)

            def log(msg: str) -> None:
                print(msg, file=sys.stderr, flush=True)

        settings = resolve_settings(argv, extras)
        results = run(settings, log, make_lm=make_lm)
        write_json_atomic(settings["output"], results)
        log(f"results written to {settings['output']} ({results['eval_seconds']} s)")
        if pipes is not None:
            pipes.report_custom_message({"kind": MESSAGE_KIND, "output": settings["output"], "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
