"""Model cards for published variants, in the style of RedHatAI's quantized model cards.

The card is rendered only from :class:`CardInfo`: no environment, resource or config object is
passed in, so no token can leak into it. As a second guard, anything that looks like a Hugging
Face token is redacted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

# (task, metric, base value, variant value, recovery %)
MetricRow = tuple[str, str, float | None, float | None, float | None]

_TOKEN_RE = re.compile(r"\b(?:hf_|api_org_)[A-Za-z0-9]{16,}\b")


@dataclass(frozen=True)
class _SchemeDoc:
    tags: tuple[str, ...]
    weights: str | None  # e.g. "INT4"
    activations: str | None
    weight_bits: int
    activation_bits: int | None
    text: str


_SCHEMES: dict[str, _SchemeDoc] = {
    "W4A16": _SchemeDoc(
        ("w4a16", "int4"), "INT4", None, 4, None,
        "Weights of the linear operators inside the transformer blocks are quantized to 4-bit integers "
        "(symmetric, one scale per group of 128 weights); activations stay in 16-bit. This cuts the "
        "weight memory of those layers by about 75 % and speeds up memory-bound decoding.",
    ),
    "W4A16_ASYM": _SchemeDoc(
        ("w4a16", "int4"), "INT4 (asymmetric)", None, 4, None,
        "Weights of the linear operators inside the transformer blocks are quantized to 4-bit integers "
        "with a scale and a zero point per group of 128 weights; activations stay in 16-bit. About 75 % "
        "less weight memory for those layers.",
    ),
    "W8A16": _SchemeDoc(
        ("w8a16", "int8"), "INT8", None, 8, None,
        "Weights of the linear operators inside the transformer blocks are quantized to 8-bit integers "
        "(symmetric, one scale per output channel); activations stay in 16-bit. About 50 % less weight "
        "memory for those layers.",
    ),
    "W8A8": _SchemeDoc(
        ("w8a8", "int8"), "INT8", "INT8", 8, 8,
        "Weights are quantized to 8-bit integers with one scale per output channel, and activations to "
        "8-bit integers with a dynamic per-token scale computed at inference time. Both halve the bits "
        "of the linear operators and let INT8 matrix-multiply kernels run them.",
    ),
    "FP8": _SchemeDoc(
        ("fp8",), "FP8", "FP8", 8, 8,
        "Weights and activations of the linear operators are quantized to FP8 (E4M3) with static, "
        "calibrated scales. About 50 % less memory and FP8 tensor-core kernels on supporting GPUs.",
    ),
    "FP8_DYNAMIC": _SchemeDoc(
        ("fp8", "fp8-dynamic"), "FP8", "FP8 (dynamic)", 8, 8,
        "Weights of the linear operators are quantized to FP8 (E4M3) with one scale per output channel; "
        "activations are quantized to FP8 with a dynamic per-token scale at inference time, so no "
        "calibration data is needed. About 50 % less weight memory.",
    ),
    "FP8_BLOCK": _SchemeDoc(
        ("fp8", "fp8-block"), "FP8 (128x128 blocks)", "FP8 (dynamic)", 8, 8,
        "Weights are quantized to FP8 (E4M3) with one scale per 128x128 block; activations are quantized "
        "to FP8 dynamically per group. About 50 % less weight memory.",
    ),
    "NVFP4A16": _SchemeDoc(
        ("nvfp4", "fp4"), "FP4 (NVFP4)", None, 4, None,
        "Weights are quantized to NVIDIA's FP4 format (E2M1 with an FP8 scale per group of 16); "
        "activations stay in 16-bit.",
    ),
    "NVFP4": _SchemeDoc(
        ("nvfp4", "fp4"), "FP4 (NVFP4)", "FP4 (NVFP4)", 4, 4,
        "Weights and activations are quantized to NVIDIA's FP4 format (E2M1 with an FP8 scale per group "
        "of 16, activation scales calibrated).",
    ),
}


def scheme_doc(scheme: str) -> _SchemeDoc:
    key = scheme.upper().replace("-", "_")
    if key in _SCHEMES:
        return _SCHEMES[key]
    return _SchemeDoc(
        (scheme.lower(),), scheme, None, 16, None,
        f"The model was compressed with the `{scheme}` scheme; see the recipe below for its exact "
        "parameters.",
    )


@dataclass(frozen=True)
class CardInfo:
    repo_id: str
    base_model: str
    base_revision: str
    license: str | None
    scheme: str
    recipe_name: str
    recipe_yaml: str
    recipe_sha256: str
    calibration_hash: str | None
    library_versions: dict[str, str]
    metrics: Sequence[MetricRow]
    run_id: str
    run_url: str | None = None
    architecture: str | None = None  # e.g. "LlamaForCausalLM"
    algorithm: str | None = None  # e.g. "gptq", "rtn", "smoothquant+gptq"
    pipeline_tag: str = "text-generation"
    extra_tags: Sequence[str] = field(default_factory=tuple)
    release_date: str | None = None
    reproduce_commands: Sequence[str] | None = None  # overrides the default commands
    model_key: str | None = None  # Dagster partition key of the base model (default: org--name)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value != value:  # NaN
        return "nan"
    return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    return "`" * max(3, longest + 1)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _redact(text: str) -> str:
    return _TOKEN_RE.sub("[redacted]", text)


def card_metadata(info: CardInfo) -> dict:
    doc = scheme_doc(info.scheme)
    tags: list[str] = []
    for t in ("llmcompressor", "compressed-tensors", *doc.tags, "quantized", *info.extra_tags):
        if t and t not in tags:
            tags.append(t)
    meta: dict = {
        "base_model": info.base_model,
        "base_model_relation": "quantized",
        "license": info.license or "other",
        "library_name": "transformers",
        "pipeline_tag": info.pipeline_tag,
        "tags": tags,
    }
    return meta


def default_reproduce_commands(info: CardInfo) -> list[str]:
    model_key = info.model_key or info.base_model.replace("/", "--")
    return [
        f"# {model_key} must be listed in models.yaml (source: hf, repo_id: {info.base_model}, "
        f"revision: {info.base_revision})",
        "pip install 'dagster-model-compression[compress,eval]'",
        f"dagster asset materialize -m dagster_project.definitions --select base_model,calibration_dataset "
        f"--partition '{model_key}'",
        f"dagster asset materialize -m dagster_project.definitions --select compressed_model "
        f"--partition '{model_key}|{info.recipe_name}'",
    ]


def render_model_card(info: CardInfo) -> str:
    """Markdown (with YAML front matter) for the repo's README.md."""
    doc = scheme_doc(info.scheme)
    meta = card_metadata(info)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()
    name = info.repo_id.split("/")[-1]
    arch = info.architecture or "see the base model's config.json"

    out: list[str] = ["---", front, "---", "", f"# {name}", ""]

    # --- Model Overview
    opt_lines = []
    if doc.weights:
        opt_lines.append(f"  - **Weight quantization:** {doc.weights}")
    if doc.activations:
        opt_lines.append(f"  - **Activation quantization:** {doc.activations}")
    if not opt_lines:
        opt_lines.append(f"  - **Scheme:** {info.scheme}")
    out += [
        "## Model Overview",
        f"- **Model Architecture:** {arch}",
        "  - **Input:** Text",
        "  - **Output:** Text",
        "- **Model Optimizations:**",
        *opt_lines,
        f"- **Base model:** [{info.base_model}](https://huggingface.co/{info.base_model}) "
        f"at revision `{info.base_revision}`",
        f"- **License:** {info.license or 'other'} (inherited from the base model)",
    ]
    if info.release_date:
        out.append(f"- **Release Date:** {info.release_date}")
    out += ["- **Model Developers:** produced by the dagster-model-compression pipeline", ""]
    out += ["### Model Optimizations", ""]
    algo = f" using the `{info.algorithm}` algorithm" if info.algorithm else ""
    out.append(
        f"This model was obtained by applying the `{info.scheme}` scheme to "
        f"[{info.base_model}](https://huggingface.co/{info.base_model}){algo} with "
        "[llm-compressor](https://github.com/vllm-project/llm-compressor); the checkpoint is stored in "
        "the [compressed-tensors](https://github.com/neuralmagic/compressed-tensors) format."
    )
    out += ["", doc.text, ""]
    if doc.weight_bits < 16:
        out.append(
            f"Weights go from 16 to {doc.weight_bits} bits per parameter in the quantized layers. "
            "Embeddings, the `lm_head` and normalization layers are not quantized."
        )
        out.append("")

    # --- Deployment
    out += [
        "## Deployment",
        "",
        "### Use with vLLM",
        "",
        "This model can be deployed efficiently with [vLLM](https://docs.vllm.ai/), which reads the "
        "compressed-tensors format natively.",
        "",
        "```python",
        "from vllm import LLM, SamplingParams",
        "",
        f'model_id = "{info.repo_id}"',
        "llm = LLM(model=model_id)",
        "sampling_params = SamplingParams(temperature=0.6, top_p=0.9, max_tokens=256)",
        'outputs = llm.generate(["What does quantization do to a language model?"], sampling_params)',
        "print(outputs[0].outputs[0].text)",
        "```",
        "",
        "vLLM also serves an OpenAI-compatible API:",
        "",
        "```bash",
        f"vllm serve {info.repo_id}",
        "```",
        "",
        "### Use with Transformers",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{info.repo_id}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{info.repo_id}")',
        "```",
        "",
    ]

    # --- Creation
    recipe = info.recipe_yaml.rstrip("\n")
    fence = _fence(recipe)
    versions = info.library_versions or {}
    out += [
        "## Creation",
        "",
        f"This model was created with llm-compressor {versions.get('llmcompressor', '(unknown version)')} "
        f"by applying the recipe `{info.recipe_name}` (sha256 `{info.recipe_sha256}`):",
        "",
        f"{fence}yaml",
        recipe,
        fence,
        "",
    ]
    if versions:
        out += ["| Library | Version |", "|---|---|"]
        out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(versions.items())]
        out.append("")
    commands = list(info.reproduce_commands) if info.reproduce_commands is not None else default_reproduce_commands(info)
    out += ["To reproduce it with this project:", "", "```bash", *commands, "```", ""]

    # --- Evaluation
    out += ["## Evaluation", ""]
    if info.metrics:
        out += [
            f"| Task | Metric | {_cell(info.base_model)} | {_cell(name)} | Recovery (%) |",
            "|---|---|---:|---:|---:|",
        ]
        for task, metric, base, variant, recovery in info.metrics:
            rec = "–" if recovery is None else f"{recovery:.1f}"
            out.append(f"| {_cell(task)} | {_cell(metric)} | {_fmt(base)} | {_fmt(variant)} | {rec} |")
        out += [
            "",
            "Recovery is the compressed model's score relative to the base model's (for metrics where "
            "lower is better, such as perplexity, the ratio is inverted), in percent.",
        ]
    else:
        out.append("No evaluation results were recorded for this variant.")
    out.append("")

    # --- Lineage
    out += [
        "## Lineage",
        "",
        f"- **Base model revision:** `{info.base_model}@{info.base_revision}`",
        f"- **Recipe:** `{info.recipe_name}` (sha256 `{info.recipe_sha256}`)",
        f"- **Calibration data hash:** `{info.calibration_hash}`" if info.calibration_hash
        else "- **Calibration data:** none (data-free scheme)",
        f"- **Dagster run:** [`{info.run_id}`]({info.run_url})" if info.run_url
        else f"- **Dagster run:** `{info.run_id}`",
        "",
    ]
    return _redact("\n".join(out))


def parse_card_metadata(markdown: str) -> dict:
    """The YAML front matter of a card (empty dict if none)."""
    if not markdown.startswith("---"):
        return {}
    parts = markdown.split("\n---", 1)
    if len(parts) != 2:
        return {}
    return yaml.safe_load(parts[0][3:]) or {}
