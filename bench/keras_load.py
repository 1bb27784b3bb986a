#!/usr/bin/python3
"""Keras loading: time and peak memory to load a ResNet50-size .keras file (about 100 MB of
float32 weights), against the targets load <= 0.5 s and peak RSS <= 1.2 x weight bytes + 40 MB
(the weights are held once, in the graph: no second copy survives the load).

The model (ResNet50 at 224x224, 1000 classes, random weights) is made once by the Keras
reference tooling into /tmp/dermal_bench/resnet50_full/model.keras.

  /usr/bin/python3 bench/keras_load.py [--build build] [--runs 5] [--model PATH]
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools" / "keras_reference"
DEFAULT_MODEL = Path("/tmp/dermal_bench/resnet50_full/model.keras")


def make_model(path):
    out = path.parent.parent
    if not (TOOLS / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TOOLS, check=True)
    subprocess.run(["node", str(TOOLS / "make_reference.js"), "--bench-out", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["/usr/bin/python3", str(TOOLS / "write_keras_files.py"), str(path.parent), "--keras-only"], check=True,
                   stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    args = ap.parse_args()
    model = Path(args.model)
    if not model.exists():
        if model != DEFAULT_MODEL:
            sys.exit(f"{model} does not exist")
        print(f"making {model} ...", file=sys.stderr)
        make_model(model)
    exe = Path(args.build) / "bench" / "dermal_bench_keras_load"
    if not exe.exists():
        sys.exit(f"{exe} is missing: ninja -C {args.build} dermal_bench_keras_load")
    runs = []
    for _ in range(args.runs):  # fresh processes: peak RSS is the load's own
        runs.append(json.loads(subprocess.run([str(exe), str(model)], check=True, capture_output=True, text=True).stdout))
    weights = runs[0]["weight_bytes"]
    load_ms = statistics.median(r["load_ms"] for r in runs)
    peak = max(r["peak_rss_bytes"] for r in runs)
    after = max(r["rss_after_bytes"] for r in runs)
    base = min(r["rss_before_bytes"] for r in runs)
    peak_limit = 1.2 * weights + 40 * 2**20
    mib = lambda b: b / 2**20
    print(f"model        {model} ({mib(model.stat().st_size):.1f} MiB file, {runs[0]['producer']}, {runs[0]['nodes']} nodes)")
    print(f"weights      {mib(weights):.1f} MiB ({runs[0]['parameters']:,} parameters)")
    print(f"load time    {load_ms:.0f} ms median of {args.runs} (target <= 500 ms): {'ok' if load_ms <= 500 else 'OVER'}")
    print(f"peak RSS     {mib(peak):.1f} MiB (target <= 1.2 x weights + 40 MiB = {mib(peak_limit):.1f} MiB): "
          f"{'ok' if peak <= peak_limit else 'OVER'}")
    print(f"RSS          {mib(base):.1f} MiB before the load, {mib(after):.1f} MiB after it")
    return 0 if load_ms <= 500 and peak <= peak_limit else 1


if __name__ == "__main__":
    sys.exit(main())
