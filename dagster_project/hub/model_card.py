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


def _eval_results(info: CardInfo) -> list:
    """``model-index`` entries: the variant's score, the base model's and the recovery, per task/metric.

    RedHatAI's quantized cards compare base vs compressed scores; ``model-index`` has no "base"
    column, so the base score and the recovery are separate metrics of the same task and dataset.
    """
    from huggingface_hub import EvalResult

    out = []
    for task, metric, base, variant, recovery in info.metrics:
        common = dict(task_type=info.pipeline_tag, dataset_type=task, dataset_name=task)
        if variant is not None:
            out.append(EvalResult(metric_type=metric, metric_value=variant, metric_name=metric, **common))
        if base is not None:
            out.append(EvalResult(metric_type=f"{metric}_base", metric_value=base,
                                  metric_name=f"{metric} ({info.base_model}, unquantized)", **common))
        if recovery is not None:
            out.append(EvalResult(metric_type=f"{metric}_recovery", metric_value=round(recovery, 2),
                                  metric_name=f"{metric} recovery (%)", **common))
    return out


def _card_data(info: CardInfo):
    from huggingface_hub import ModelCardData

    doc = scheme_doc(info.scheme)
    tags: list[str] = []
    for t in ("llmcompressor", "compressed-tensors", *doc.tags, "quantized", *info.extra_tags):
        if t and t not in tags:
            tags.append(t)
    return ModelCardData(
        base_model=info.base_model,
        base_model_relation="quantized",
        license=info.license or "other",
        library_name="transformers",
        pipeline_tag=info.pipeline_tag,
        tags=tags,
        model_name=info.repo_id.split("/")[-1],
        eval_results=_eval_results(info) or None,
    )


def card_metadata(info: CardInfo) -> dict:
    """The card's YAML front matter as a dict (``model-index`` included when there are metrics)."""
    return _card_data(info).to_dict()


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


# Jinja template of the card; values arrive as variables, so a recipe containing "{{" is printed,
# never interpreted.
_TEMPLATE = """---
{{ card_data }}
---

# {{ name }}

## Model Overview
- **Model Architecture:** {{ arch }}
  - **Input:** Text
  - **Output:** Text
- **Model Optimizations:**
{% if doc.weights %}  - **Weight quantization:** {{ doc.weights }}
{% endif %}{% if doc.activations %}  - **Activation quantization:** {{ doc.activations }}
{% endif %}{% if not doc.weights and not doc.activations %}  - **Scheme:** {{ info.scheme }}
{% endif %}- **Base model:** [{{ info.base_model }}](https://huggingface.co/{{ info.base_model }}) at revision `{{ info.base_revision }}`
- **License:** {{ info.license or 'other' }} (inherited from the base model)
{% if info.release_date %}- **Release Date:** {{ info.release_date }}
{% endif %}- **Model Developers:** produced by the dagster-model-compression pipeline

### Model Optimizations

This model was obtained by applying the `{{ info.scheme }}` scheme to [{{ info.base_model }}](https://huggingface.co/{{ info.base_model }}){% if info.algorithm %} using the `{{ info.algorithm }}` algorithm{% endif %} with [llm-compressor](https://github.com/vllm-project/llm-compressor); the checkpoint is stored in the [compressed-tensors](https://github.com/neuralmagic/compressed-tensors) format.

{{ doc.text }}
{% if doc.weight_bits < 16 %}
Weights go from 16 to {{ doc.weight_bits }} bits per parameter in the quantized layers. Embeddings, the `lm_head` and normalization layers are not quantized.
{% endif %}
## Deployment

### Use with vLLM

This model can be deployed efficiently with [vLLM](https://docs.vllm.ai/), which reads the compressed-tensors format natively.

```python
from vllm import LLM, SamplingParams

model_id = "{{ info.repo_id }}"
llm = LLM(model=model_id)
sampling_params = SamplingParams(temperature=0.6, top_p=0.9, max_tokens=256)
outputs = llm.generate(["What does quantization do to a language model?"], sampling_params)
print(outputs[0].outputs[0].text)
```

vLLM also serves an OpenAI-compatible API:

```bash
vllm serve {{ info.repo_id }}
```

### Use with Transformers

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{{ info.repo_id }}")
tokenizer = AutoTokenizer.from_pretrained("{{ info.repo_id }}")
```

## Creation

This model was created with llm-compressor {{ versions.get('llmcompressor', '(unknown version)') }} by applying the recipe `{{ info.recipe_name }}` (sha256 `{{ info.recipe_sha256 }}`):

{{ fence }}yaml
{{ recipe }}
{{ fence }}
{% if versions %}
| Library | Version |
|---|---|
{% for k, v in versions|dictsort %}| {{ k|cell }} | {{ v|cell }} |
{% endfor %}{% endif %}
To reproduce it with this project:

```bash
{% for c in commands %}{{ c }}
{% endfor %}```

## Evaluation

{% if rows %}| Task | Metric | {{ info.base_model|cell }} | {{ name|cell }} | Recovery (%) |
|---|---|---:|---:|---:|
{% for r in rows %}| {{ r.task|cell }} | {{ r.metric|cell }} | {{ r.base }} | {{ r.variant }} | {{ r.recovery }} |
{% endfor %}
Recovery is the compressed model's score relative to the base model's (for metrics where lower is better, such as perplexity, the ratio is inverted), in percent. The same figures are in this card's `model-index` metadata.
{% else %}No evaluation results were recorded for this variant.
{% endif %}
## Lineage

- **Base model revision:** `{{ info.base_model }}@{{ info.base_revision }}`
- **Recipe:** `{{ info.recipe_name }}` (sha256 `{{ info.recipe_sha256 }}`)
{% if info.calibration_hash %}- **Calibration data hash:** `{{ info.calibration_hash }}`
{% else %}- **Calibration data:** none (data-free scheme)
{% endif %}{% if info.run_url %}- **Dagster run:** [`{{ info.run_id }}`]({{ info.run_url }})
{% else %}- **Dagster run:** `{{ info.run_id }}`
{% endif %}"""


def render_model_card(info: CardInfo) -> str:
    """Markdown (with YAML front matter, ``model-index`` included) for the repo's README.md."""
    import jinja2
    from huggingface_hub import ModelCard

    recipe = info.recipe_yaml.rstrip("\n")
    rows = [
        {"task": task, "metric": metric, "base": _fmt(base), "variant": _fmt(variant),
         "recovery": "–" if recovery is None else f"{recovery:.1f}"}
        for task, metric, base, variant, recovery in info.metrics
    ]
    commands = list(info.reproduce_commands) if info.reproduce_commands is not None else default_reproduce_commands(info)
    # Rendered once with our own Jinja environment (for the `cell` filter); ModelCard then parses
    # the result, so the front matter is the library's own YAML of ModelCardData.
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters["cell"] = _cell
    text = env.from_string(_TEMPLATE).render(
        card_data=_card_data(info).to_yaml(), info=info, doc=scheme_doc(info.scheme),
        name=info.repo_id.split("/")[-1], arch=info.architecture or "see the base model's config.json",
        versions=info.library_versions or {}, recipe=recipe, fence=_fence(recipe), rows=rows, commands=commands,
    )
    card = ModelCard(text)
    return _redact(str(card))


def parse_card_metadata(markdown: str) -> dict:
    """The YAML front matter of a card (empty dict if none)."""
    if not markdown.startswith("---"):
        return {}
    parts = markdown.split("\n---", 1)
    if len(parts) != 2:
        return {}
    return yaml.safe_load(parts[0][3:]) or {}
