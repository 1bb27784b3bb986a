#!/usr/bin/python3
"""Engine benchmark: Dermal vs PyTorch eager on the baseline ONNX models, as a markdown table.

    ninja -C build dermal_bench_engine
    /usr/bin/python3 bench/engine.py [--models DIR] [--build DIR] [--iters 30] [--warmup 5]
                                     [--threads 1 2] [--load-runs 5] [--json FILE] [--cpu-time]
    /usr/bin/python3 bench/engine.py --from-json FILE [--cpu-time]   # re-print saved numbers

For each model in DIR/*.onnx and each thread count, runs build/bench/dermal_bench_engine and
bench/torch_eager.py, each in a fresh process, one after the other (never at the same time), and
prints one table row. A load happens once per process, so the load column is the median over
--load-runs fresh processes of each program (the main run's and load-only ones, interleaved).
See bench/README.md for the columns and targets.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MB = 1e6

# The targets the engine is held to.
MIN_SPEEDUP = 2.0         # torch eager / dermal, forward and forward+backward, per thread count
MAX_FLOOR_RATIO = 1.3     # dermal forward / convolution floor
RSS_SLACK_BYTES = 30e6    # peak RSS <= weight bytes + this
RESNET18_LOAD_MS = 50.0   # load + plan, resnet18


def run_json(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("%s failed (exit %d): %s\n%s" % (what, proc.returncode, " ".join(cmd), proc.stderr.strip()))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        sys.exit("%s printed no JSON: %s\n%s" % (what, " ".join(cmd), proc.stdout + proc.stderr))
    return json.loads(lines[-1])


def targets(model, d, t, ms):
    """Which targets a row meets: a short 'name ok/MISS' list. ms(result, key) reads a time."""
    checks = [
        ("speed", ms(t, "forward") / ms(d, "forward") >= MIN_SPEEDUP
         and ms(t, "fwd_bwd") / ms(d, "fwd_bwd") >= MIN_SPEEDUP),
        ("floor", d["forward_over_floor"] <= MAX_FLOOR_RATIO),
        ("rss", d["peak_rss_bytes"] <= d["weight_bytes"] + RSS_SLACK_BYTES),
    ]
    if "resnet18" in os.path.basename(model):
        checks.append(("load", ms(d, "load_median") <= RESNET18_LOAD_MS))
    return ", ".join("%s %s" % (name, "ok" if good else "MISS") for name, good in checks)


def row(model, threads, d, t, ms):
    rss, weights = d["peak_rss_bytes"], d["weight_bytes"]
    fwd, fb, floor = (ms(d, "forward"), ms(t, "forward")), (ms(d, "fwd_bwd"), ms(t, "fwd_bwd")), ms(d, "conv_floor")
    cells = [
        os.path.basename(model),
        str(threads),
        "%.0f / %.0f" % (ms(d, "load_median"), ms(t, "load_median")),
        "%.1f / %.1f / %.2fx" % (fwd[0], fwd[1], fwd[1] / fwd[0]),
        "%.1f / %.1f / %.2fx" % (fb[0], fb[1], fb[1] / fb[0]),
        "%.1f / %.2fx" % (floor, d["forward_over_floor"]),  # the ratio measured side by side
        "%.1f / %.1f / %.1f" % (rss / MB, weights / MB, (rss - weights) / MB),
        "%.0f" % (t["peak_rss_bytes"] / MB),
        targets(model, d, t, ms),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = [
    "model", "threads", "load ms (dermal / torch)",
    "forward ms (dermal / torch / torch÷dermal)", "fwd+bwd ms (dermal / torch / torch÷dermal)",
    "conv floor ms / forward÷floor", "dermal RSS / weights / RSS−weights MB", "torch RSS MB", "targets",
]


def measure(a):
    """Runs both programs for every model and thread count; returns the raw results."""
    bench = os.path.join(a.build, "bench", "dermal_bench_engine")
    if not os.access(bench, os.X_OK):
        sys.exit("no %s: build it first:\n  cmake -S %s -B %s -G Ninja -DCMAKE_BUILD_TYPE=Release\n"
                 "  ninja -C %s dermal_bench_engine\n(or pass --build DIR)" % (bench, ROOT, a.build, a.build))
    models = [a.models] if a.models.endswith(".onnx") else sorted(glob.glob(os.path.join(a.models, "*.onnx")))
    if not models:
        sys.exit("no .onnx models in %s (pass --models)" % a.models)
    common = ["--iters", str(a.iters), "--warmup", str(a.warmup)]
    raw = []
    for model in models:
        for threads in a.threads:
            args = ["--model", model, "--threads", str(threads)] + common
            print("running %s, %d thread(s)..." % (os.path.basename(model), threads), file=sys.stderr, flush=True)
            d = run_json([bench] + args, "dermal_bench_engine")
            t = run_json([sys.executable, os.path.join(HERE, "torch_eager.py")] + args, "torch_eager.py")
            for result in (d, t):
                result["load_runs_ms"], result["load_runs_cpu_ms"] = [result["load_ms"]], [result["load_cpu_ms"]]
            for _ in range(a.load_runs - 1):
                for result, cmd, what in ((d, [bench], "dermal_bench_engine"),
                                          (t, [sys.executable, os.path.join(HERE, "torch_eager.py")], "torch_eager.py")):
                    again = run_json(cmd + args + ["--load-only"], what)
                    result["load_runs_ms"].append(again["load_ms"])
                    result["load_runs_cpu_ms"].append(again["load_cpu_ms"])
                    if "fresh_memory_ms" in again:
                        result.setdefault("fresh_memory_runs_ms", []).append(again["fresh_memory_ms"])
            for result in (d, t):
                result["load_median_ms"] = statistics.median(result["load_runs_ms"])
                result["load_median_cpu_ms"] = statistics.median(result["load_runs_cpu_ms"])
            raw.append({"model": model, "threads": threads, "loadavg_1min": os.getloadavg()[0], "dermal": d, "torch": t})
    return raw


def print_table(raw, cpu_time):
    suffix = "_cpu_ms" if cpu_time else "_ms"

    def ms(result, key):
        return result[key + suffix]

    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for r in raw:
        print(row(r["model"], r["threads"], r["dermal"], r["torch"], ms))
    d = raw[0]["dermal"]
    print("\n%s: medians of %d runs after %d warm-up runs (load: of %d fresh processes); targets: torch/dermal >= %.1fx (forward and fwd+bwd), "
          "forward <= %.1fx floor, RSS <= weights + %.0f MB, resnet18 load <= %.0f ms"
          % ("process CPU time" if cpu_time else "wall time", d["iters"], d["warmup"], len(d["load_runs_ms"]), MIN_SPEEDUP, MAX_FLOOR_RATIO,
             RSS_SLACK_BYTES / MB, RESNET18_LOAD_MS))
    # Load time is mostly first touches of fresh memory, which some machines charge for unevenly.
    fresh = ["%s %.0f" % (os.path.basename(r["model"]).split("_")[0], statistics.median(r["dermal"]["fresh_memory_runs_ms"]))
             for r in raw if r["dermal"].get("fresh_memory_runs_ms") and r["threads"] == raw[0]["threads"]]
    if fresh:
        print("fresh memory: writing as many new bytes as the weights took (median ms, dermal's load-only runs): %s"
              % ", ".join(fresh))
    # Other work on the machine skews timings, most of all with several threads: say how busy it was.
    print("machine: %d CPUs, 1-minute load average %s during the runs"
          % (os.cpu_count(), " ".join("%.1f" % r["loadavg_1min"] for r in raw)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=os.path.join(ROOT, "..", "shared", "models"),
                    help="a folder of .onnx models, or one .onnx file (default ../shared/models)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the CMake build folder (default build)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--load-runs", type=int, default=5, help="fresh processes whose load time is the median (default 5)")
    ap.add_argument("--json", metavar="FILE", help="also save every raw measurement here")
    ap.add_argument("--from-json", metavar="FILE", help="print the table of a saved --json file; run nothing")
    ap.add_argument("--cpu-time", action="store_true",
                    help="tabulate process CPU time instead of wall time (steadier on a busy machine; "
                         "only meaningful with 1 thread)")
    a = ap.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            raw = json.load(f)
    else:
        raw = measure(a)
    print_table(raw, a.cpu_time)
    if a.json and not a.from_json:
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=1)
        print("raw numbers: %s" % a.json)


if __name__ == "__main__":
    main()
