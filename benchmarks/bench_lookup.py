"""Lookup latency of both registry backends against the 50 ms goal.

    python benchmarks/bench_lookup.py [--versions 1000] [--remote-versions 1000] [--repeats 15]

Registers N versions (10 base models x 4 recipes x families) in a fresh local SQLite registry
and, when $DMC_REGISTRY_URL points at a real Kubeflow Model Registry, in that server too
(under a unique run prefix, since the server cannot delete), then times filtered list_versions
calls and prints median milliseconds and the ratio to the 50 ms goal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster_project.registry import VariantRecord, open_registry  # noqa: E402

GOAL_MS = 50.0
RECIPES = [("w4a16-rtn", "W4A16"), ("w4a16-gptq", "W4A16"), ("w8a8-sq-gptq", "W8A8"), ("fp8-dynamic", "FP8_DYNAMIC")]


def records(n: int, prefix: str) -> list[VariantRecord]:
    out = []
    for i in range(n):
        recipe, scheme = RECIPES[i % len(RECIPES)]
        base = f"org/{prefix}-base-{i % 10}"
        out.append(
            VariantRecord(
                model_name=f"{prefix}-base-{i % 10}-{recipe}",
                version_name=f"v-{i:012x}",
                uri=f"pvc://models/{prefix}/{i}",
                properties={
                    "base_model": base,
                    "recipe": recipe,
                    "scheme": scheme,
                    "recovery_avg": f"{95 + (i * 37 % 500) / 100:.2f}",
                    "eval_wikitext_word_perplexity": f"{20 + i % 7}.0",
                    "bench_prefix": prefix,
                },
                source_id=f"run-{i}",
                source_name=f"published_variant[{i}]",
                approved=i % 9 != 0,
            )
        )
    return out


def time_queries(reg, prefix: str, repeats: int) -> list[tuple[str, float, int]]:
    base = f"org/{prefix}-base-3"
    queries = {
        "base_model": dict(base_model=base),
        "base_model+recipe": dict(base_model=base, recipe="w4a16-gptq"),
        "scheme+min_recovery": dict(scheme="W4A16", min_recovery=99.0),
        "min_recovery": dict(min_recovery=99.5),
        "all approved (no filter)": dict(),
    }
    rows = []
    for name, kw in queries.items():
        reg.list_versions(**kw)  # warm-up
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            hits = reg.list_versions(**kw)
            samples.append((time.perf_counter() - t0) * 1000)
        rows.append((name, statistics.median(samples), len(hits)))
    return rows


def report(title: str, register_s: float, n: int, rows) -> None:
    print(f"\n== {title}: {n} versions registered in {register_s:.1f} s ({register_s / n * 1000:.1f} ms each)")
    print(f"{'query':28} {'median ms':>10} {'x goal':>7} {'hits':>6}")
    for name, med, hits in rows:
        print(f"{name:28} {med:10.2f} {med / GOAL_MS:7.2f} {hits:6d}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--remote-versions", type=int, default=1000, help="versions registered in the real server")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    prefix = "bench-" + uuid.uuid4().hex[:6]

    with tempfile.TemporaryDirectory() as d:
        reg = open_registry(f"sqlite:///{d}/bench.sqlite")
        t0 = time.perf_counter()
        for rec in records(args.versions, prefix):
            reg.publish(rec)
        reg_s = time.perf_counter() - t0
        report("LocalRegistry (SQLite)", reg_s, args.versions, time_queries(reg, prefix, args.repeats))
        reg.close()

    url = os.environ.get("DMC_REGISTRY_URL", "")
    if url.startswith(("http://", "https://")):
        recs = records(args.remote_versions, prefix)
        t0 = time.perf_counter()

        def publish_chunk(chunk):
            r = open_registry(url)
            for rec in chunk:
                r.publish(rec)

        workers = 4
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(publish_chunk, [recs[i::workers] for i in range(workers)]))
        reg_s = time.perf_counter() - t0
        reg = open_registry(url)
        total = len(reg.list_versions(approved_only=False, include_archived=True))
        report(
            f"KubeflowRegistry ({url}; server holds {total} versions in all)",
            reg_s,
            len(recs),
            time_queries(reg, prefix, max(3, args.repeats // 3)),
        )
    else:
        print("\n(DMC_REGISTRY_URL not set: Kubeflow backend not measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
