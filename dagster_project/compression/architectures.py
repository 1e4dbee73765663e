"""Per-architecture knowledge recipes need: layers never to quantize and SmoothQuant mappings."""

from __future__ import annotations

from dataclasses import dataclass

_DENSE_SMOOTHQUANT = (
    (("re:.*q_proj", "re:.*k_proj", "re:.*v_proj"), "re:.*input_layernorm"),
    (("re:.*gate_proj", "re:.*up_proj"), "re:.*post_attention_layernorm"),
)
# MoE: smooth attention only; expert MLPs are reached through routers we must not touch.
_MOE_SMOOTHQUANT = (_DENSE_SMOOTHQUANT[0],)


@dataclass(frozen=True)
class ArchitectureProfile:
    architecture: str
    ignore: tuple[str, ...]
    smoothquant_mappings: tuple[tuple[tuple[str, ...], str], ...]


PROFILES: dict[str, ArchitectureProfile] = {
    p.architecture: p
    for p in [
        ArchitectureProfile("LlamaForCausalLM", ("lm_head",), _DENSE_SMOOTHQUANT),
        ArchitectureProfile("MistralForCausalLM", ("lm_head",), _DENSE_SMOOTHQUANT),
        ArchitectureProfile("Qwen2ForCausalLM", ("lm_head",), _DENSE_SMOOTHQUANT),
        ArchitectureProfile("Qwen3ForCausalLM", ("lm_head",), _DENSE_SMOOTHQUANT),
        # Routers / gates stay in full precision: quantizing them reroutes tokens.
        ArchitectureProfile("MixtralForCausalLM", ("lm_head", "re:.*block_sparse_moe.gate"), _MOE_SMOOTHQUANT),
        ArchitectureProfile("Qwen2MoeForCausalLM", ("lm_head", "re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$"), _MOE_SMOOTHQUANT),
        ArchitectureProfile("Qwen3MoeForCausalLM", ("lm_head", "re:.*mlp.gate$"), _MOE_SMOOTHQUANT),
    ]
}


def profile_for(architecture: str | None) -> ArchitectureProfile:
    """Known profile, or a conservative one (only lm_head ignored, no SmoothQuant mappings)."""
    if architecture in PROFILES:
        return PROFILES[architecture]
    return ArchitectureProfile(architecture or "unknown", ("lm_head",), ())
