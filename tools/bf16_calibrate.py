#!/usr/bin/python3
"""Which convolutions should stay f32 when a model runs in bf16? Chosen on HAM10000 *validation*
images (never the test split, which bench/bf16_agreement.py then reads), in three steps:

1. The bf16 convolutions of the plan (`dermal inspect --json --precision bf16`).
2. Each one's own cost: the model with that convolution alone in bf16 (every other one listed in
   f32_nodes), mean |dp| against f32 over the first --probe images.
3. The costliest first, kept f32 in growing numbers (1, 2, 3, 4, 6, 8, 12, 16, ...) until top-1
   agreement with f32 on all --images reaches --agreement and mean |dp| falls to --mean-dp.

It prints the card fields (`"precision": "bf16", "f32_nodes": [...]`) and, with --card-out,
writes the model's card with them added.

    /usr/bin/python3 tools/bf16_calibrate.py [--model M] [--card C] [--images 500] [--probe 80]
        [--agreement 0.998] [--mean-dp 0.002] [--card-out FILE]
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def bf16_convolutions(dermal_cli, model):
    """Node names of the convolutions a bf16 plan of the model runs in bf16."""
    out = subprocess.run([dermal_cli, "inspect", "--json", "--precision", "bf16", model], check=True, capture_output=True,
                         text=True).stdout
    return [n["name"] for n in json.loads(out)["nodes"] if n.get("runs") == "bf16"]


def answers(dermal, model, card, images, threads, precision, f32_nodes=None):
    """Probabilities (images x classes, in label order) of the model in the given precision."""
    m = dermal.Model(model, card, lesion_check="off", threads=threads, precision=precision, f32_nodes=f32_nodes)
    codes = [label["code"] for label in m.labels]
    return np.array([[m.predict(data, top_k=len(codes))["probabilities"][c] for c in codes] for data in images])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default=os.path.join(ROOT, "build/python"), help="folder holding the dermal module")
    ap.add_argument("--cli", default=os.path.join(ROOT, "build/dermal"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/skinnet_mnv2_ham_isic224.onnx"))
    ap.add_argument("--card", default="", help="the model's card, when it is not beside the model")
    ap.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    ap.add_argument("--images", type=int, default=500, help="validation images for the agreement (default 500)")
    ap.add_argument("--probe", type=int, default=80, help="validation images for each convolution's cost (default 80)")
    ap.add_argument("--agreement", type=float, default=0.998, help="top-1 agreement to reach (default 0.998)")
    ap.add_argument("--mean-dp", type=float, default=0.002, help="mean |dp| to reach (default 0.002)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--card-out", default="", help="write the card with precision bf16 and f32_nodes here")
    a = ap.parse_args()
    sys.path.insert(0, a.module)
    import dermal

    card = a.card or None
    if dermal.Model(a.model, card, lesion_check="off", precision="bf16").precision != "bf16":
        sys.exit("this CPU has no native bf16: nothing to calibrate")
    meta = csv.DictReader(open(os.path.join(a.shared, "data/ham10000/metadata.csv")))
    ids = [r["image_id"] for r in meta if r["split"] == "val"][: a.images]
    images = [open(os.path.join(a.shared, "data/ham10000/images", i + ".jpg"), "rb").read() for i in ids]
    start = time.time()
    convs = bf16_convolutions(a.cli, a.model)
    f32 = answers(dermal, a.model, card, images, a.threads, "f32")
    top32 = f32.argmax(1)

    def measure(f32_nodes, n=len(images)):
        p = answers(dermal, a.model, card, images[:n], a.threads, "bf16", f32_nodes)
        return float(np.mean(p.argmax(1) == top32[:n])), float(np.mean(np.abs(p - f32[:n])))

    agreement, mean_dp = measure([])
    print("%d validation images, %d bf16 convolutions: all in bf16, agreement %.2f%%, mean |dp| %.4f"
          % (len(images), len(convs), 100 * agreement, mean_dp), flush=True)
    cost = {}
    for k, conv in enumerate(convs):
        cost[conv] = measure([c for c in convs if c != conv], a.probe)[1]
        print("  cost %d/%d  %.5f  %s" % (k + 1, len(convs), cost[conv], conv), file=sys.stderr, flush=True)
    ranked = sorted(convs, key=lambda c: -cost[c])
    chosen, count = [], 1
    while agreement < a.agreement or mean_dp > a.mean_dp:
        if count > len(ranked):
            sys.exit("even with every convolution in f32 the targets are not met")
        chosen = ranked[:count]
        agreement, mean_dp = measure(chosen)
        print("%3d in f32: agreement %.2f%%, mean |dp| %.4f" % (count, 100 * agreement, mean_dp), flush=True)
        count = count + 1 if count < 4 else count * 3 // 2
    print("chosen in %.0f s: %d of %d convolutions stay f32" % (time.time() - start, len(chosen), len(convs)))
    fields = {"precision": "bf16", "f32_nodes": chosen}
    print(json.dumps(fields, indent=2))
    if a.card_out:
        source = a.card or os.path.splitext(a.model)[0] + ".json"
        if not os.path.exists(source):
            sys.exit("no card at %s to add the fields to: add them to the model's card by hand" % source)
        full = json.load(open(source))
        full.update(fields)
        with open(a.card_out, "w") as f:
            json.dump(full, f, indent=2)
            f.write("\n")
        print("wrote", a.card_out)


if __name__ == "__main__":
    main()
