"""`dmc`: look up published compressed models (no torch / llmcompressor imports here).

    dmc models list [--base-model X] [--recipe R] [--scheme S] [--min-recovery 99] [--all] [--json]
    dmc models show MODEL VERSION [--json]
    dmc models revoke MODEL VERSION
    dmc models serve MODEL VERSION [--runtime vllm] [--gpu N] [--namespace NS] [--storage-key KEY]
    dmc recipes list [--json]        (`recipes recipes-list` / `recipes ls` still work)
    dmc recipes add NAME FILE [--json]
    dmc recipes render NAME [--architecture A]
    dmc backfill MODEL [--recipes a,b] [--with-base]   (the daemon runs it: dagster dev)

Registry: --registry URL, else $DMC_REGISTRY_URL, else the local SQLite registry. URLs:
http(s)://host:port (Kubeflow / RHOAI, API v1alpha3 or v1), mlflow+http(s)://host:port (MLflow).
Exit codes: 0 ok, 1 nothing matched / not found, 2 error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence


def _registry_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        metavar="URL",
        default=None,
        help="http(s)://host:port (Kubeflow Model Registry), mlflow+http(s)://host:port (MLflow),"
        " sqlite:///path or a path;"
        " default $DMC_REGISTRY_URL, else the local SQLite registry",
    )
    p.add_argument("--token-file", default=None, help="file holding the bearer token (default: $DMC_REGISTRY_TOKEN)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmc", description="Dagster model compression: published model lookups.")
    sub = parser.add_subparsers(dest="group", required=True, metavar="{models,recipes,backfill}")
    models = sub.add_parser("models", help="published compressed models")
    msub = models.add_subparsers(dest="command", required=True, metavar="{list,show,revoke,serve}")

    ls = msub.add_parser("list", help="list published versions (approved, not archived, by default)")
    ls.add_argument("--base-model", help="property base_model equals this (e.g. org/name)")
    ls.add_argument("--recipe", help="property recipe equals this")
    ls.add_argument("--scheme", help="property scheme equals this (e.g. W4A16)")
    ls.add_argument("--min-recovery", type=float, metavar="PCT", help="recovery_avg >= PCT (percent)")
    ls.add_argument("--all", action="store_true", help="include unapproved and archived (revoked) versions")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _registry_arg(ls)

    show = msub.add_parser("show", help="URI, metrics and lineage of one version")
    show.add_argument("model")
    show.add_argument("version")
    show.add_argument("--json", action="store_true")
    _registry_arg(show)

    rv = msub.add_parser("revoke", help="remove the 'approved' label and archive a version")
    rv.add_argument("model")
    rv.add_argument("version")
    rv.add_argument("--json", action="store_true")
    _registry_arg(rv)

    sv = msub.add_parser("serve", help="print a KServe InferenceService (vLLM runtime) for a registered version")
    sv.add_argument("model")
    sv.add_argument("version")
    sv.add_argument("--runtime", default="vllm", help="ServingRuntime: vllm (= vllm-runtime) or a runtime name")
    sv.add_argument("--gpu", type=int, default=1, metavar="N", help="nvidia.com/gpu per replica (0: none)")
    sv.add_argument("--namespace", default=None)
    sv.add_argument("--storage-key", default=None,
                    help="data connection (secret) holding the S3 credentials; default: storageUri + service account")
    _registry_arg(sv)

    recipes = sub.add_parser("recipes", help="the recipe catalog (built-in and registered user recipes)")
    rsub = recipes.add_subparsers(dest="command", required=True, metavar="{list,add,render}")
    # `recipes-list` was the first spelling; kept so existing scripts keep working.
    rl = rsub.add_parser("list", aliases=["recipes-list", "ls"], help="built-in and registered recipes")
    rl.add_argument("--json", action="store_true")
    ra = rsub.add_parser("add", help="validate a recipe YAML file and register it as a recipe partition")
    ra.add_argument("name")
    ra.add_argument("file")
    ra.add_argument("--json", action="store_true")
    rr = rsub.add_parser("render", help="print a recipe's YAML as applied to an architecture")
    rr.add_argument("name")
    rr.add_argument("--architecture", default="LlamaForCausalLM")

    bf = sub.add_parser("backfill", help="backfill one model across its recipes (the daemon runs it)")
    bf.set_defaults(command="backfill")
    bf.add_argument("model")
    bf.add_argument("--recipes", default="", help="comma-separated; default: the model's recipes in models.yaml")
    bf.add_argument("--with-base", action="store_true", help="also (re)make base_model, calibration, base eval")
    return parser


def _open(args):
    from dagster_project.registry import open_registry
    from dagster_project.settings import load_settings

    url = args.registry or load_settings().registry.url
    return open_registry(url, token_file=args.token_file)


def _fmt_pct(v) -> str:
    return "" if v is None else f"{v:.2f}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _status(v) -> str:
    return "archived" if v.archived else ("approved" if v.approved else "unapproved")


def cmd_list(args) -> int:
    from dagster_project.registry import VersionFilter

    reg = _open(args)
    versions = reg.list_versions(VersionFilter(
        approved_only=not args.all,
        include_archived=args.all,
        base_model=args.base_model,
        recipe=args.recipe,
        scheme=args.scheme,
        min_recovery=args.min_recovery,
    ))
    if args.json:
        print(json.dumps([v.as_dict() for v in versions], indent=2, sort_keys=True))
    elif versions:
        header = ["MODEL", "VERSION", "RECIPE", "SCHEME", "RECOVERY %", "URI"]
        if args.all:
            header.insert(2, "STATUS")
        rows = []
        for v in versions:
            row = [v.model_name, v.version_name, v.recipe, v.scheme, _fmt_pct(v.metric("recovery_avg")), v.uri]
            if args.all:
                row.insert(2, _status(v))
            rows.append(row)
        print(_table(rows, header))
    else:
        print("no published model matches", file=sys.stderr)
    return 0 if versions else 1


def _show_text(v) -> str:
    lines = [
        f"model:      {v.model_name}",
        f"version:    {v.version_name}",
        f"status:     {_status(v)}",
        f"uri:        {v.uri}",
        f"format:     {v.model_format_name}",
        "lineage:",
        f"  source kind:  {v.source_kind}",
        f"  source id:    {v.source_id}",
        f"  source name:  {v.source_name}",
    ]
    for key in ("base_model", "base_model_revision", "recipe", "recipe_sha256", "calibration_hash",
                "llmcompressor_version", "dagster_run_url"):
        if key in v.properties:
            lines.append(f"  {key}: {v.properties[key]}")
    metrics = {k: val for k, val in v.properties.items() if k.startswith(("eval_", "recovery_"))}
    if metrics:
        lines.append("metrics:")
        lines += [f"  {k}: {metrics[k]}" for k in sorted(metrics)]
    shown = {"base_model", "base_model_revision", "recipe", "recipe_sha256", "calibration_hash",
             "llmcompressor_version", "dagster_run_url", *metrics}
    other = {k: val for k, val in v.properties.items() if k not in shown}
    if other:
        lines.append("properties:")
        lines += [f"  {k}: {other[k]}" for k in sorted(other)]
    lines.append(f"registry ids: model={v.registry_model_id} version={v.registry_version_id}"
                 f" artifact={v.registry_artifact_id}")
    return "\n".join(lines)


def cmd_show(args) -> int:
    v = _open(args).get(args.model, args.version)
    if v is None:
        print(f"dmc: no such version: {args.model}/{args.version}", file=sys.stderr)
        return 1
    print(json.dumps(v.as_dict(), indent=2, sort_keys=True) if args.json else _show_text(v))
    return 0


def cmd_revoke(args) -> int:
    reg = _open(args)
    if reg.get(args.model, args.version) is None:
        print(f"dmc: no such version: {args.model}/{args.version}", file=sys.stderr)
        return 1
    v = reg.revoke(args.model, args.version)
    print(json.dumps(v.as_dict(), indent=2, sort_keys=True) if args.json
          else f"revoked {v.model_name}/{v.version_name} (archived, label 'approved' removed)")
    return 0


def cmd_serve(args) -> int:
    import yaml

    from dagster_project.registry.serving import inference_service

    v = _open(args).get(args.model, args.version)
    if v is None:
        print(f"dmc: no such version: {args.model}/{args.version}", file=sys.stderr)
        return 1
    if args.gpu < 0:
        print("dmc: error: --gpu must be >= 0", file=sys.stderr)
        return 2
    isvc = inference_service(v, runtime=args.runtime, gpus=args.gpu, namespace=args.namespace,
                             storage_key=args.storage_key)
    print(yaml.safe_dump(isvc, sort_keys=False), end="")
    return 0


def _recipes_dir():
    from dagster_project.artifacts import ArtifactStore

    return ArtifactStore.from_env().layout().recipes_dir()


def cmd_recipes_list(args) -> int:
    from dagster_project.compression.recipes import BUILTIN_RECIPES

    rows = [{"name": r.name, "kind": "built-in", "scheme": r.scheme, "calibrated": r.calibrated,
             "description": r.description} for r in BUILTIN_RECIPES.values()]
    folder = _recipes_dir()
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        from dagster_project.compression.recipes import parse_user_recipe

        r = parse_user_recipe(path.stem, path.read_text())
        rows.append({"name": r.name, "kind": "user", "scheme": r.scheme, "calibrated": r.calibrated,
                     "description": f"sha256 {r.sha256[:12]}, {', '.join(r.modifiers)}"})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table([[r["name"], r["kind"], r["scheme"], "yes" if r["calibrated"] else "no", r["description"]]
                      for r in rows], ["RECIPE", "KIND", "SCHEME", "CALIBRATED", "DESCRIPTION"]))
    return 0


def cmd_recipes_add(args) -> int:
    import os

    # llmcompressor validates the recipe. Its console log binds to sys.stdout when it is imported, and
    # stdout is for data (`--json`): bind it to stderr, quiet below ERROR unless the user says otherwise.
    os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")
    with contextlib.redirect_stdout(sys.stderr):
        try:
            import llmcompressor  # noqa: F401
        except ImportError:
            pass  # registration says what is missing

    from dagster_project.automation.recipe_registration import register_recipe
    from dagster_project.artifacts import ArtifactStore

    instance = None
    if os.environ.get("DAGSTER_HOME"):
        from dagster import DagsterInstance

        instance = DagsterInstance.get()
    recipe = register_recipe(ArtifactStore.from_env(), instance, args.name, path=args.file)
    out = {"name": recipe.name, "sha256": recipe.sha256, "modifiers": list(recipe.modifiers),
           "calibrated": recipe.calibrated, "partition_added": instance is not None}
    print(json.dumps(out, indent=2) if args.json else
          f"registered recipe {recipe.name} (sha256 {recipe.sha256[:12]}; {', '.join(recipe.modifiers)})"
          + ("" if instance else " - the catalog sensor adds its partition (DAGSTER_HOME not set)"))
    return 0


def cmd_recipes_render(args) -> int:
    from dagster_project.compression.catalog import resolve_recipe

    print(resolve_recipe(_recipes_dir(), args.name, args.architecture).yaml_text, end="")
    return 0


def cmd_backfill(args) -> int:
    from dagster import DagsterInstance

    from dagster_project.automation.backfills import launch_backfill, release_partitions
    from dagster_project.definitions import defs
    from dagster_project.models.catalog import resolve_model
    from dagster_project.partitions import model_partitions, recipe_partitions

    recipes = [r for r in args.recipes.split(",") if r] or list(resolve_model(args.model).recipes)
    if not recipes:
        print(f"dmc: error: {args.model} lists no recipes in models.yaml: pass --recipes", file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(model_partitions.name, [args.model])
        instance.add_dynamic_partitions(recipe_partitions.name, recipes)
        backfill_id = launch_backfill(
            instance, defs.get_repository_def().asset_graph,
            release_partitions(args.model, recipes, with_base=args.with_base),
            tags={"dmc/trigger": "backfill"}, title=f"{args.model} × {len(recipes)} recipes")
    print(f"backfill {backfill_id}: {args.model} × {', '.join(recipes)} (runs when the daemon is up: dagster dev)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dagster_project.registry import RegistryError

    from dagster_project.compression.recipes import RecipeError

    handlers = {("models", "list"): cmd_list, ("models", "show"): cmd_show, ("models", "revoke"): cmd_revoke,
                ("models", "serve"): cmd_serve,
                ("recipes", "list"): cmd_recipes_list, ("recipes", "recipes-list"): cmd_recipes_list,
                ("recipes", "ls"): cmd_recipes_list, ("recipes", "add"): cmd_recipes_add,
                ("recipes", "render"): cmd_recipes_render, ("backfill", "backfill"): cmd_backfill}
    try:
        return handlers[args.group, args.command](args)
    except RecipeError as exc:
        print(f"dmc: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"dmc: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
