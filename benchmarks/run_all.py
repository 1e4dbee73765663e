"""`make bench`: every benchmark ratio, each measured in one run, as one table.

    python benchmarks/run_all.py [--only definitions,compression,...] [--quick]

Runs each benchmark script in its own interpreter (so none inherits another's imports or state),
reads its `RESULT {json}` line(s) (or, for scripts that print text only, their ratio line),
prints a table (name, inputs, measured, goal, ratio, pass/fail), and writes it with the date and
the machine (nproc, memory, CPU model) to benchmarks/results.md and into benchmarks/README.md.
A benchmark whose script is missing prints "not available"; one that fails prints "failed".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Bench:
    key: str
    script: str
    name: str
    goal: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ()
    timeout: int = 600


BENCHES = [
    Bench("definitions", "bench_definitions.py", "definitions load vs empty Definitions", "<= 1.2",
          ("--repeats", "7"), ("--repeats", "3"), 180),
    Bench("compression", "bench_compression.py", "compression: asset vs bare oneshot", "<= 1.1",
          ("--repeats", "3"), ("--repeats", "1", "--samples", "64"), 1200),
    Bench("evaluation", "bench_eval.py", "evaluation: asset vs bare simple_evaluate", "<= 1.1",
          (), ("--repeats", "1", "--limit", "20"), 480),
    Bench("nightly", "bench_nightly.py", "nightly: unchanged re-run vs full run", "<= 0.02",
          (), ("--recipes", "w4a16-rtn", "--warm-repeats", "1"), 600),
    # Two real servers started, seeded with 1,000 versions each and queried: ~8 min at load 15-20.
    Bench("lookup", "bench_lookup.py", "lookup over 1,000 versions (median / goal: 50 ms local, 300 ms servers)",
          "<= 1.0", (), ("--remote-versions", "200", "--repeats", "5"), 1200),
    Bench("sensor", "bench_sensor.py", "sensor tick over 200 watched repos", "<= 1.0", (), (), 300),
    Bench("graph", "bench_graph.py", "whole demo graph vs bare tools", "<= 1.15",
          (), ("--recipes", "w4a16-rtn"), 1800),
    Bench("backfill", "bench_backfill.py", "backfill: model x recipes, pool 2 vs 1", "<= 0.8",
          (), ("--recipes", "w4a16-rtn,w8a16-rtn"), 1800),
    Bench("test-goals", "bench_test_goals.py", "speed goals moved out of the tests", "<= 1.0",
          (), ("--partitions", "10"), 600),
]


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    mem = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, AttributeError):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return {"nproc": str(os.cpu_count()), "memory": mem, "cpu": cpu, "python": platform.python_version(),
            "commit": commit}


def parse(bench: Bench, output: str) -> list[dict]:
    rows = [json.loads(line[len("RESULT "):]) for line in output.splitlines() if line.startswith("RESULT {")]
    if rows:
        return rows
    if bench.key == "lookup":  # per backend: the slowest query's median against the 50 ms goal
        out, title = [], None
        for line in output.splitlines():
            m = re.match(r"== (.+?): (\d+) versions registered", line)
            if m:
                title, n = m.group(1), m.group(2)
                out.append({"name": f"lookup, {title}", "inputs": f"{n} versions", "worst": 0.0, "query": ""})
                continue
            m = re.match(r"(\S.*?)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s*$", line)
            if m and out and title:
                ratio = float(m.group(3))
                if ratio >= out[-1]["worst"]:
                    out[-1].update(worst=ratio, query=m.group(1).strip(), ms=float(m.group(2)))
        return [{"name": r["name"], "inputs": f"{r['inputs']}, slowest query {r['query']}",
                 "measured": f"{r.get('ms', 0):.1f} ms", "goal": "<= 50 ms", "ratio": r["worst"],
                 "ok": r["worst"] <= 1.0} for r in out]
    if bench.key == "sensor":  # one row per tick kind: "  <label>  X s  ratio R", goal "goal G s per tick"
        goal = re.search(r"goal ([\d.]+) s per tick", output)
        head = re.search(r"over (\d+) watched repos", output)
        out = []
        for m in re.finditer(r"^\s+(\S.*?\S)\s+([\d.]+) s\s+ratio\s+([\d.]+)\s*$", output, re.M):
            ratio = float(m.group(3))
            out.append({"name": f"sensor tick: {m.group(1)}", "inputs": f"{head.group(1) if head else '?'} repos",
                        "measured": f"{float(m.group(2)):.2f} s", "goal": f"<= {goal.group(1) if goal else '?'} s",
                        "ratio": ratio, "ok": ratio <= 1.0})
        if out:
            return out
    m = re.search(r"ratio\s+([\d.]+)\s*\(goal\s*<=\s*([\d.]+)\)", output)
    if m:
        ratio, goal = float(m.group(1)), float(m.group(2))
        measured = "; ".join(re.findall(r"^\s*(?:through|bare)[^\n]*?:\s*([\d.]+ s)", output, re.M)) or "see log"
        return [{"name": bench.name, "inputs": "defaults", "measured": measured, "goal": f"<= {goal}",
                 "ratio": ratio, "ok": ratio <= goal}]
    return []


def run(bench: Bench, quick: bool, log_dir: Path) -> list[dict]:
    script = HERE / bench.script
    if not script.is_file():
        print(f"-- {bench.key}: not available ({bench.script} does not exist)", flush=True)
        return [{"name": bench.name, "inputs": "-", "measured": "not available", "goal": bench.goal,
                 "ratio": None, "ok": None}]
    args = bench.quick_args if quick else bench.args
    print(f"-- {bench.key}: {bench.script} {' '.join(args)}", flush=True)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}", "TQDM_DISABLE": "1",
           "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=bench.timeout)
        output, rc = done.stdout + "\n" + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rc = f"timeout after {bench.timeout} s"
    elapsed = time.perf_counter() - started
    (log_dir / f"{bench.key}.log").write_text(output)
    rows = parse(bench, output) if rc == 0 else []
    if not rows:
        tail = "\n".join(output.strip().splitlines()[-5:])
        print(f"   failed ({rc}); log: {log_dir / (bench.key + '.log')}\n{tail}", flush=True)
        return [{"name": bench.name, "inputs": "-", "measured": f"failed ({rc})", "goal": bench.goal,
                 "ratio": None, "ok": False}]
    print(f"   done in {elapsed:.0f} s", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | inputs | measured | goal | ratio | result |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        result = "n/a" if r["ok"] is None else ("pass" if r["ok"] else "FAIL")
        lines.append(f"| {r['name']} | {r['inputs']} | {r['measured']} | {r['goal']} | {ratio} | {result} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated keys: " + ",".join(b.key for b in BENCHES))
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run; numbers are noisier)")
    p.add_argument("--no-write", action="store_true", help="print only; leave results.md and README.md alone")
    p.add_argument("--from-logs", action="store_true",
                   help="run nothing: rebuild the table from var/bench-logs/ (e.g. after re-running one benchmark)")
    args = p.parse_args(argv)
    only = {k for k in args.only.split(",") if k}
    unknown = only - {b.key for b in BENCHES}
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    log_dir = ROOT / "var" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = []
    for bench in BENCHES:
        if only and bench.key not in only:
            continue
        if args.from_logs:
            log = log_dir / f"{bench.key}.log"
            parsed = parse(bench, log.read_text()) if log.is_file() else []
            rows += parsed or [{"name": bench.name, "inputs": "-", "measured": "no log" if not log.is_file()
                                else "failed", "goal": bench.goal, "ratio": None, "ok": None if not log.is_file()
                                else False}]
            continue
        rows += run(bench, args.quick, log_dir)
    total = time.perf_counter() - started
    m = machine()
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    tail = ("table rebuilt from the logs of the latest run of each benchmark" if args.from_logs else
            f"whole run {total / 60:.1f} min{' (--quick)' if args.quick else ''}")
    header = (f"Measured {when} on {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Python {m['python']}, "
              f"commit {m['commit']}; {tail}.")
    text = table(rows)
    print()
    print(header)
    print(text)
    if not args.no_write:
        (HERE / "results.md").write_text(f"# Benchmark results\n\n{header}\n\n{text}\n")
        readme = HERE / "README.md"
        if readme.is_file():
            body = readme.read_text()
            block = f"<!-- results -->\n{header}\n\n{text}\n<!-- /results -->"
            body = re.sub(r"<!-- results -->.*?<!-- /results -->", lambda _: block, body, flags=re.S)
            readme.write_text(body)
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
