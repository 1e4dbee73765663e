"""Stand-in for the vLLM environment, launched exactly like the real runner (same command,
arguments, environment and Pipes session) by pointing $DMC_VLLM_RUNNER at this file.

It runs the real runner (`vllm_runner.main`: settings from the command line and Pipes extras,
task grouping, `lm_eval.simple_evaluate`, the speed probe, the results file, log streaming and
the Pipes message through the real `dagster_pipes`). Only the model object differs: vLLM needs
CUDA, so lm-eval's `hf` backend on CPU stands in for it, built from the same `model_args`.

$FAKE_VLLM_RECORD: write what the stand-in received (model, model_args, argv, environment).
$FAKE_VLLM_MODE=fail: raise like a vLLM engine that cannot start.
"""

import json
import os
import sys

from dagster_project.evaluation import vllm_runner

ENV_SHOWN = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "VLLM_WORKER_MULTIPROC_METHOD", "CUDA_VISIBLE_DEVICES",
             "PYTHONPATH", "TOKENIZERS_PARALLELISM", "VLLM_ATTENTION_BACKEND")


def make_lm(model: str, model_args: str, batch_size):
    args = dict(kv.split("=", 1) for kv in model_args.split(","))
    record = os.environ.get("FAKE_VLLM_RECORD")
    if record:
        with open(record, "w") as fh:
            json.dump({"model": model, "model_args": model_args, "batch_size": batch_size, "argv": sys.argv,
                       "env": {k: os.environ.get(k) for k in ENV_SHOWN},
                       "has_hf_token": bool(os.environ.get("HF_TOKEN")),
                       "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                                         ("dagster", "llmcompressor", "torch", "vllm"))}, fh)
    if os.environ.get("FAKE_VLLM_MODE") == "fail":
        raise RuntimeError("stand-in: vLLM engine failed to start (no CUDA device)")
    assert model == "vllm", model
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=args["pretrained"], dtype="float32", device="cpu", batch_size=8,
              add_bos_token=args.get("add_bos_token") == "True",
              max_length=int(args["max_model_len"]) if "max_model_len" in args else None)
    generate = lm.generate_until

    def generate_until(requests, disable_tqdm=False):
        # vLLM's SamplingParams(min_tokens) is transformers' min_new_tokens.
        for r in requests:
            ctx, kwargs = r.arguments
            if "min_tokens" in kwargs:
                kwargs = {**kwargs, "min_new_tokens": kwargs["min_tokens"]}
                kwargs.pop("min_tokens")
                r.arguments = (ctx, kwargs)
        return generate(requests, disable_tqdm=disable_tqdm)

    lm.generate_until = generate_until
    return lm


if __name__ == "__main__":
    sys.exit(vllm_runner.main(sys.argv[1:], make_lm=make_lm))
