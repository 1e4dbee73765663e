"""How many model-heavy steps run at once: the `model_compute` pool.

compressed_model, base_evaluation and evaluation_report declare `pool="model_compute"`. Its limit:

* `concurrency.pools.default_limit` in the instance's dagster.yaml (deploy/dagster.local.yaml: 1;
  applies to every pool nobody configured);
* overridden per pool at run time, stored in the instance database:
  `dagster instance concurrency set model_compute 2`, the UI (Deployment → Concurrency), or
  `python -m dagster_project.automation.pools 2` (or `DMC_MODEL_COMPUTE_LIMIT=2 python -m ...`).
"""

from __future__ import annotations

import argparse
import sys

from dagster_project.resources.compute import MODEL_POOL
from dagster_project.settings import load_settings

LIMIT_ENV = "DMC_MODEL_COMPUTE_LIMIT"
MODEL_HEAVY_ASSETS = ("compressed_model", "base_evaluation", "evaluation_report")


def pool_limit(instance, pool: str = MODEL_POOL) -> tuple[int | None, bool]:
    """(limit, using the instance default)."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    return info.limit, info.using_default_limit


def set_pool_limit(instance, limit: int, pool: str = MODEL_POOL) -> None:
    if limit < 1:
        raise ValueError(f"pool {pool!r}: the limit must be at least 1 (got {limit})")
    instance.event_log_storage.set_concurrency_slots(pool, limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("limit", nargs="?", type=int, default=None,
                        help=f"new limit (default: ${LIMIT_ENV}; neither: show the current limit)")
    parser.add_argument("--pool", default=MODEL_POOL)
    args = parser.parse_args(argv)
    from dagster import DagsterInstance

    limit = args.limit if args.limit is not None else load_settings().compute.model_compute_limit
    with DagsterInstance.get() as instance:
        if limit is not None:
            set_pool_limit(instance, limit, args.pool)
        current, default = pool_limit(instance, args.pool)
    print(f"pool {args.pool}: limit {current}{' (instance default_limit)' if default else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
