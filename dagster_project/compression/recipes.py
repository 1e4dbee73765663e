"""The recipe catalog: built-in llmcompressor recipes and users' own, validated before any weights load.

Every recipe ends up as llmcompressor recipe YAML text; its sha256 is part of a variant's
version, the text is saved beside the weights, and nothing here imports llmcompressor.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from dagster_project.compression.architectures import ArchitectureProfile, profile_for

RECIPE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# Modifier classes that llmcompressor 0.14 exposes to recipes (checked by a test against the package).
KNOWN_MODIFIERS = frozenset({
    "QuantizationModifier", "GPTQModifier", "AWQModifier", "SmoothQuantModifier",
    "SparseGPTModifier", "WandaPruningModifier", "MagnitudePruningModifier",
    "ConstantPruningModifier", "LogarithmicEqualizationModifier", "QuIPModifier",
    "SpinQuantModifier", "AutoRoundModifier",
})
CALIBRATED_MODIFIERS = frozenset({
    "GPTQModifier", "AWQModifier", "SmoothQuantModifier", "SparseGPTModifier",
    "WandaPruningModifier", "LogarithmicEqualizationModifier", "AutoRoundModifier",
})
# Modifiers that quantize weights (llmcompressor 0.14's QuantizationMixin).
QUANTIZING_MODIFIERS = frozenset({"QuantizationModifier", "GPTQModifier", "AutoRoundModifier"})
# Modifiers that rescale or rotate weights: they must run before the quantizer rounds those weights.
PRE_QUANTIZATION_MODIFIERS = frozenset({
    "SmoothQuantModifier", "LogarithmicEqualizationModifier", "AWQModifier", "QuIPModifier", "SpinQuantModifier",
})
# Ignore patterns that match every module.
MATCH_EVERYTHING = frozenset({"re:.*", "re:.+", "re:^.*$", "re:.*?"})
# Preset schemes that need calibration data even under QuantizationModifier (static activations).
CALIBRATED_SCHEMES = frozenset({"FP8", "W8A8_FP8_STATIC", "NVFP4", "MXFP4", "W4A8"})


class RecipeError(ValueError):
    """A recipe that cannot run: unknown, malformed, or unfit for the model."""


class BuiltinRecipe(BaseModel, frozen=True):
    name: str
    version: int
    scheme: str
    description: str
    algorithm: Literal["rtn", "gptq", "awq", "smoothquant+gptq", "smoothquant+sparsegpt+rtn"]
    smoothing_strength: float | None = Field(default=None, ge=0.0, le=1.0)
    sparsity: float | None = Field(default=None, gt=0.0, lt=1.0)
    # llmcompressor 0.14's AWQ pins calibration tensors in page-locked memory: CUDA only.
    requires_gpu: bool = False

    @property
    def calibrated(self) -> bool:
        return self.algorithm != "rtn"

    def render(self, profile: ArchitectureProfile) -> str:
        """llmcompressor recipe YAML for one architecture."""
        ignore = list(profile.ignore)
        mods: dict[str, Any] = {}
        if "smoothquant" in self.algorithm:
            if not profile.smoothquant_mappings:
                raise RecipeError(
                    f"recipe {self.name!r} uses SmoothQuant, which has no layer mappings for "
                    f"architecture {profile.architecture!r}; use a recipe without SmoothQuant "
                    f"(w4a16-rtn, w4a16-gptq, fp8-dynamic) or give your own recipe YAML"
                )
            mods["SmoothQuantModifier"] = {
                "smoothing_strength": self.smoothing_strength,
                "mappings": [list(m) for m in profile.smoothquant_mappings],
            }
        if "sparsegpt" in self.algorithm:
            mods["SparseGPTModifier"] = {
                "sparsity": self.sparsity, "mask_structure": "0:0",
                "targets": ["Linear"], "ignore": ignore,
            }
        if self.algorithm == "awq":
            mods["AWQModifier"] = {"duo_scaling": True}  # the paired quantization modifier carries `ignore`
        quant = {"targets": ["Linear"], "scheme": self.scheme, "ignore": ignore}
        if self.algorithm in ("gptq", "smoothquant+gptq"):
            mods["GPTQModifier"] = {**quant, "dampening_frac": 0.01}
        else:
            mods["QuantizationModifier"] = quant
        return yaml.safe_dump({"default_stage": {"default_modifiers": mods}}, sort_keys=False)


BUILTIN_RECIPES: dict[str, BuiltinRecipe] = {
    r.name: r
    for r in [
        BuiltinRecipe(name="w4a16-rtn", version=1, scheme="W4A16", algorithm="rtn",
                      description="INT4 weights (group 128), round-to-nearest, data-free"),
        BuiltinRecipe(name="w8a16-rtn", version=1, scheme="W8A16", algorithm="rtn",
                      description="INT8 weights per channel, round-to-nearest, data-free"),
        BuiltinRecipe(name="fp8-dynamic", version=1, scheme="FP8_DYNAMIC", algorithm="rtn",
                      description="FP8 weights per channel, dynamic per-token FP8 activations, data-free"),
        BuiltinRecipe(name="w4a16-gptq", version=1, scheme="W4A16", algorithm="gptq",
                      description="INT4 weights (group 128) with GPTQ, calibrated"),
        BuiltinRecipe(name="w8a8-int8", version=1, scheme="W8A8", algorithm="smoothquant+gptq",
                      smoothing_strength=0.8,
                      description="SmoothQuant 0.8 + GPTQ INT8 weights and activations (RHOAI model-serve flow)"),
        BuiltinRecipe(name="w4a16-awq", version=1, scheme="W4A16_ASYM", algorithm="awq", requires_gpu=True,
                      description="AWQ scaling + asymmetric INT4 weights (group 128), calibrated"),
        BuiltinRecipe(name="sparse50-w8a8", version=1, scheme="W8A8", algorithm="smoothquant+sparsegpt+rtn",
                      smoothing_strength=0.5, sparsity=0.5,
                      description="SmoothQuant 0.5 + SparseGPT 50 % unstructured + INT8 W8A8 (one-shot guide)"),
    ]
}


class ResolvedRecipe(BaseModel, frozen=True):
    """A recipe ready for oneshot: name, YAML text, and what placement / data it needs."""

    name: str
    yaml_text: str
    sha256: str
    scheme: str
    calibrated: bool
    builtin: bool
    modifiers: tuple[str, ...]
    requires_gpu: bool = False

    @property
    def placement(self) -> Literal["cpu", "gpu"]:
        # Data-free recipes run on CPU pods; calibrated ones want a GPU (laptops use CPU anyway).
        return "gpu" if self.calibrated else "cpu"


def recipe_sha256(yaml_text: str) -> str:
    return hashlib.sha256(yaml_text.encode()).hexdigest()


def validate_recipe_name(name: str) -> str:
    if not RECIPE_NAME.match(name or ""):
        raise RecipeError(
            f"invalid recipe name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-' "
            "(no path separators)"
        )
    return name


def resolve_builtin(name: str, architecture: str | None) -> ResolvedRecipe:
    if name not in BUILTIN_RECIPES:
        raise RecipeError(f"unknown recipe {name!r}; built-in recipes: {', '.join(sorted(BUILTIN_RECIPES))}")
    recipe = BUILTIN_RECIPES[name]
    text = recipe.render(profile_for(architecture))
    return ResolvedRecipe(
        name=name, yaml_text=text, sha256=recipe_sha256(text), scheme=recipe.scheme,
        calibrated=recipe.calibrated, builtin=True, modifiers=tuple(_modifier_names(yaml.safe_load(text))),
        requires_gpu=recipe.requires_gpu,
    )


def parse_user_recipe(name: str, yaml_text: str) -> ResolvedRecipe:
    """Validate a user's llmcompressor recipe YAML statically (no llmcompressor import)."""
    validate_recipe_name(name)
    try:
        doc = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {name!r} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not doc:
        raise RecipeError(f"recipe {name!r} must be a YAML mapping of stages to modifier groups")
    modifiers = _modifier_names(doc)
    if not modifiers:
        raise RecipeError(f"recipe {name!r} names no modifiers (expected '<stage>: {{<group>_modifiers: {{...}}}}')")
    unknown = [m for m in modifiers if m not in KNOWN_MODIFIERS]
    if unknown:
        raise RecipeError(
            f"recipe {name!r} uses unknown modifier(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(KNOWN_MODIFIERS))}"
        )
    schemes = [s for s in _find_key(doc, "scheme") if isinstance(s, str)]
    for scheme in schemes:
        _check_scheme(name, scheme)
    conflict = find_conflict(doc)
    if conflict:
        raise RecipeError(f"recipe {name!r} contradicts itself: {conflict}")
    requires_gpu = "AWQModifier" in modifiers
    calibrated = bool(set(modifiers) & CALIBRATED_MODIFIERS) or any(s.upper() in CALIBRATED_SCHEMES for s in schemes)
    return ResolvedRecipe(
        name=name, yaml_text=yaml_text, sha256=recipe_sha256(yaml_text),
        scheme=schemes[0] if schemes else "custom", calibrated=calibrated, builtin=False,
        modifiers=tuple(modifiers), requires_gpu=requires_gpu,
    )


def check_device(recipe: ResolvedRecipe, device: str) -> None:
    if recipe.requires_gpu and not device.startswith("cuda"):
        raise RecipeError(
            f"recipe {recipe.name!r} needs a CUDA GPU (llmcompressor 0.14's AWQ pins memory for GPU "
            f"transfers) but this step runs on {device!r}; run it on a GPU node or pick w4a16-gptq"
        )


class _SchemeName(BaseModel):
    scheme: str

    @field_validator("scheme")
    @classmethod
    def _known(cls, value: str) -> str:
        if value.upper() not in KNOWN_SCHEMES:
            raise ValueError(f"unknown scheme {value!r}; known: {', '.join(sorted(KNOWN_SCHEMES))}")
        return value


# compressed-tensors 0.19 preset scheme names.
KNOWN_SCHEMES = frozenset({
    "W4A16", "W4A16_ASYM", "W8A16", "W8A8", "INT8", "W4A8", "FP8", "FP8_DYNAMIC", "FP8_BLOCK",
    "NVFP4", "NVFP4A16", "MXFP4", "MXFP4A16", "MXFP8", "MXFP8A16", "UNQUANTIZED",
})


def _check_scheme(name: str, scheme: str) -> None:
    try:
        _SchemeName(scheme=scheme)
    except ValidationError as exc:
        raise RecipeError(f"recipe {name!r}: {exc.errors()[0]['msg']}") from None


def find_conflict(doc: dict) -> str | None:
    """The first contradiction between a recipe's modifiers that llmcompressor would run without complaint."""
    skipped = [stage for stage, body in doc.items() if not str(stage).endswith("_stage") and _modifier_names({stage: body})]
    if skipped:
        # llmcompressor's Recipe.from_dict reads only '<name>_stage' keys: the rest would compress nothing.
        return (f"stage {skipped[0]!r} is not named '<name>_stage', so llmcompressor would skip its modifiers "
                f"and produce an uncompressed model; rename it (e.g. {str(skipped[0]) + '_stage'!r})")
    mods = modifiers_in_order(doc)
    quantizers = [(n, a) for n, a in mods if n in QUANTIZING_MODIFIERS]
    for index, (mod, _) in enumerate(mods):
        earlier = [n for n, _ in mods[:index] if n in QUANTIZING_MODIFIERS]
        if mod in PRE_QUANTIZATION_MODIFIERS and earlier:
            return (f"{mod} comes after {earlier[0]}; it rescales weights that {earlier[0]} has already rounded, "
                    f"so put {mod} first")
    for i, (first, a) in enumerate(quantizers):
        for second, b in quantizers[i + 1:]:
            shared = sorted(set(modifier_targets(a)) & set(modifier_targets(b)))
            if shared:
                return (f"{first} and {second} both quantize {', '.join(shared)} "
                        f"({_scheme_of(a)} vs {_scheme_of(b)}); keep one quantizer per layer")
    for mod, args in mods:
        ignore = set(as_list(args.get("ignore")))
        everything = ignore & MATCH_EVERYTHING
        if everything or (mod in QUANTIZING_MODIFIERS and set(modifier_targets(args)) <= ignore):
            pattern = sorted(everything or set(modifier_targets(args)))[0]
            return f"{mod}'s ignore list ({pattern!r}) excludes every layer it targets, so it would change nothing"
    return None


def modifiers_in_order(doc: dict) -> list[tuple[str, dict]]:
    """(modifier, arguments) in the order llmcompressor applies them: stage by stage, group by group."""
    out = []
    for stage in doc.values():
        if isinstance(stage, dict):
            for key, group in stage.items():
                if str(key).endswith("_modifiers") and isinstance(group, dict):
                    out.extend((mod, args if isinstance(args, dict) else {}) for mod, args in group.items())
    return out


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def modifier_targets(args: dict) -> list[str]:
    if isinstance(args.get("config_groups"), dict):
        return [t for group in args["config_groups"].values() if isinstance(group, dict)
                for t in as_list(group.get("targets"))]
    return as_list(args.get("targets", ["Linear"]))  # llmcompressor's default target


def _scheme_of(args: dict) -> str:
    return str(args.get("scheme") or ("config_groups" in args and "config_groups") or "no scheme")


def _modifier_names(doc: Any) -> list[str]:
    names: list[str] = []
    if not isinstance(doc, dict):
        return names
    for stage in doc.values():
        if not isinstance(stage, dict):
            continue
        for key, group in stage.items():
            if key.endswith("_modifiers") and isinstance(group, dict):
                names.extend(group.keys())
    return names


def _find_key(node: Any, key: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found.extend(_find_key(v, key))
    elif isinstance(node, list):
        for v in node:
            found.extend(_find_key(v, key))
    return found


def load_user_recipe_file(name: str, path: str | Path) -> ResolvedRecipe:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist")
    return parse_user_recipe(name, path.read_text())
