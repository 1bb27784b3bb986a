#!/usr/bin/python3
"""Dermal's engine beside ONNX Runtime (CPU, a benchmark peer) on the same ONNX models, as a markdown table.

    bench/ort/install.sh                                # once: onnxruntime-node into bench/ort/node_modules
    ninja -C build dermal_bench_engine
    /usr/bin/python3 bench/vs_ort.py [--models M ...] [--threads 1 2] [--rounds 8] [--iters 50]
                                     [--warmup 5] [--precision f32|bf16 [--f32-nodes-from CARD]]
                                     [--build DIR] [--json FILE]

For each model and thread count, --rounds interleaved rounds: each runs build/bench/dermal_bench_engine
and bench/ort_engine.js, each a fresh process with --iters timed runs, one after the other (never at the
same time), alternating which goes first, so that slow spells of a shared machine hit both sides alike.
A row's numbers are medians over the rounds. See bench/README.md (Dermal vs ONNX Runtime) for the columns.
--precision bf16 runs Dermal's convolutions in bf16 (on CPUs with AVX-512 BF16) beside ORT's default f32;
--f32-nodes-from CARD keeps the convolutions a model card lists in "f32_nodes" in f32.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from engine import run_json  # bench/engine.py: runs a program, returns its last JSON line

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MB = 1e6
RESNET50 = os.path.join(ROOT, "build", "bench", "models", "resnet50_224.onnx")  # made by make_resnet50.py
# "SkinNet 160", the bundled model before the pretrained ones, taken from the repository's history.
PREVIOUS_DEFAULT = os.path.join(ROOT, "build", "bench", "models", "skinnet_ham_isic160.onnx")
PREVIOUS_DEFAULT_COMMIT = "acf6c25"
LABELS = {"skinnet_mnv2_ham_isic224.onnx": "SkinNet 224 (default)", "skinnet_ham_isic160.onnx": "SkinNet 160 (previous)",
          "resnet50_224.onnx": "ResNet-50 224 (random weights)"}


def default_models():
    models = [os.path.join(ROOT, "..", "shared", "models", "mobilenet_v2_ham192.onnx"),
              os.path.join(ROOT, "..", "shared", "models", "resnet18_ham192.onnx"),
              os.path.join(ROOT, "models", "skinnet_mnv2_ham_isic224.onnx")]
    return models + [PREVIOUS_DEFAULT, RESNET50]


def check_setup(a):
    bench = os.path.join(a.build, "bench", "dermal_bench_engine")
    if not os.access(bench, os.X_OK):
        sys.exit("no %s: build it first (ninja -C %s dermal_bench_engine), or pass --build DIR" % (bench, a.build))
    if not os.path.isdir(os.path.join(HERE, "ort", "node_modules", "onnxruntime-node")):
        sys.exit("ONNX Runtime, the benchmark peer, is not installed: run bench/ort/install.sh "
                 "(npm ci into bench/ort/node_modules; Dermal itself does not need it)")
    node = shutil.which("node")
    if not node:
        sys.exit("no `node` on PATH: ort_engine.js needs Node.js")
    for model in a.models:
        if os.path.exists(model):
            continue
        print("making %s..." % model, file=sys.stderr, flush=True)
        if os.path.abspath(model) == RESNET50:
            subprocess.run([sys.executable, os.path.join(HERE, "make_resnet50.py"), model], check=True)
        elif os.path.abspath(model) == PREVIOUS_DEFAULT:
            os.makedirs(os.path.dirname(model), exist_ok=True)
            with open(model, "wb") as f:
                subprocess.run(["git", "-C", ROOT, "show", "%s:models/skinnet_ham_isic160.onnx" % PREVIOUS_DEFAULT_COMMIT],
                               stdout=f, check=True)
        else:
            sys.exit("no model %s" % model)
    return bench, node


def measure(a):
    bench, node = check_setup(a)
    raw = []
    f32_nodes = json.load(open(a.f32_nodes_from)).get("f32_nodes", []) if a.f32_nodes_from else []
    dermal_args = ["--precision", a.precision] + (["--f32-nodes", ",".join(f32_nodes)] if f32_nodes else [])
    for model in a.models:
        for threads in a.threads:
            args = ["--model", model, "--threads", str(threads), "--iters", str(a.iters), "--warmup", str(a.warmup)]
            sides = [("dermal", [bench] + args + dermal_args, "dermal_bench_engine"),
                     ("ort", [node, os.path.join(HERE, "ort_engine.js")] + args, "ort_engine.js")]
            rounds = []
            for r in range(a.rounds):
                print("%s, %d thread(s): round %d/%d" % (os.path.basename(model), threads, r + 1, a.rounds),
                      file=sys.stderr, flush=True)
                one = {"first": sides[r % 2][0]}
                for name, cmd, what in sides[r % 2:] + sides[:r % 2]:  # alternate which side goes first
                    one[name] = run_json(cmd, what)
                rounds.append(one)
            if rounds[0]["dermal"].get("precision", "f32") != a.precision:
                sys.exit("Dermal ran %s where %s was asked for (this CPU has no native bf16?)"
                         % (rounds[0]["dermal"].get("precision"), a.precision))
            raw.append({"model": model, "threads": threads, "precision": a.precision, "loadavg_1min": os.getloadavg()[0], "rounds": rounds})
    return raw


def med(rounds, side, key):
    return statistics.median(r[side][key] for r in rounds)


HEADER = ["model", "threads", "forward ms (Dermal / ORT)", "Dermal÷ORT (rounds' range)", "Dermal forward÷conv floor",
          "peak RSS MB (Dermal / ORT)", "load ms (Dermal load+plan / ORT create + first run)"]


def row(r):
    rs = r["rounds"]
    d, o = med(rs, "dermal", "forward_ms"), med(rs, "ort", "forward_ms")
    # Each round's two runs are neighbours in time, so their ratio is a paired measurement.
    ratios = [x["dermal"]["forward_ms"] / x["ort"]["forward_ms"] for x in rs]
    name = os.path.basename(r["model"])
    cells = [LABELS.get(name, name), str(r["threads"]),
             "%.1f / %.1f" % (d, o),
             "%.2fx (%.2f–%.2f)" % (d / o, min(ratios), max(ratios)),
             # The floor is f32 convolutions: a bf16 forward is not measured against it.
             # (each run's median of forward / floor measured side by side, which the machine's
             # drift between the separate timings would blur)
             "%.2fx" % med(rs, "dermal", "forward_over_floor") if r.get("precision", "f32") == "f32" else "–",
             "%.0f / %.0f" % (med(rs, "dermal", "peak_rss_bytes") / MB, med(rs, "ort", "peak_rss_bytes") / MB),
             "%.0f / %.0f + %.0f" % (med(rs, "dermal", "load_ms"), med(rs, "ort", "load_ms"), med(rs, "ort", "first_ms"))]
    return "| " + " | ".join(cells) + " |"


def print_table(raw, a):
    header = list(HEADER)
    if raw[0].get("precision", "f32") != "f32":
        header[2] = "forward ms (Dermal %s / ORT f32)" % raw[0]["precision"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(HEADER))
    for r in raw:
        print(row(r))
    print("\nwall time, medians over %d interleaved rounds (each a fresh process per side) of each process's median "
          "of %d runs after %d warm-up runs; ONNX Runtime %s (onnxruntime-node, CPU)"
          % (a.rounds, a.iters, a.warmup, raw[0]["rounds"][0]["ort"]["ort_version"]))
    # Other work on the machine skews timings, most of all with several threads: say how busy it was.
    print("machine: %d CPUs, 1-minute load average %s during the rows"
          % (os.cpu_count(), " ".join("%.1f" % r["loadavg_1min"] for r in raw)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=default_models(),
                    help="ONNX files (default: the two baselines, SkinNet 224, SkinNet 160, ResNet-50)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the CMake build folder (default build)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=8, help="interleaved rounds per row (default 8)")
    ap.add_argument("--iters", type=int, default=50, help="timed runs per process (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32", help="Dermal's convolutions (ORT: f32)")
    ap.add_argument("--f32-nodes-from", metavar="CARD", help="bf16: keep the card's f32_nodes in f32")
    ap.add_argument("--json", metavar="FILE", help="also save every raw measurement here")
    a = ap.parse_args()
    if a.rounds < 1 or a.iters < 1:
        ap.error("--rounds and --iters must be at least 1")
    raw = measure(a)
    print_table(raw, a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=1)
        print("raw numbers: %s" % a.json)


if __name__ == "__main__":
    main()
