#!/usr/bin/python3
"""Does bf16 change the answer? Every HAM10000 test image through the same model twice, in f32
and in bf16 (`precision="bf16"`: convolutions on bf16-rounded inputs and weights, f32 sums):
top-1 agreement, mean and largest |dp| over all classes, and the Pearson correlation of the two
Grad-CAM heatmaps (top class of the f32 answer, the model's default layer).

    /usr/bin/python3 bench/bf16_agreement.py [--model M [--card C]] [--limit N]

Targets (issue 19): top-1 agreement >= 99.5%, mean |dp| <= 0.005, Grad-CAM Pearson >= 0.99.
On a CPU without native bf16 both runs are f32 and the script says so and stops.
"""
import argparse
import csv
import os
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default=os.path.join(ROOT, "build/python"), help="folder holding the dermal module")
    ap.add_argument("--model", default=os.path.join(ROOT, "models/skinnet_mnv2_ham_isic224.onnx"))
    ap.add_argument("--card", default="", help="the model's card, when it is not beside the model")
    ap.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    sys.path.insert(0, a.module)
    import dermal

    models = {p: dermal.Model(a.model, a.card or None, lesion_check="off", threads=a.threads, precision=p) for p in ("f32", "bf16")}
    if models["bf16"].precision != "bf16":
        sys.exit("this CPU has no native bf16: the bf16 model runs f32, nothing to compare")
    meta = csv.DictReader(open(os.path.join(a.shared, "data/ham10000/metadata.csv")))
    ids = [r["image_id"] for r in meta if r["split"] == "test"]
    if a.limit:
        ids = ids[: a.limit]
    agree, dp, pearson, seconds = 0, [], [], {"f32": 0.0, "bf16": 0.0}
    for image_id in ids:
        data = open(os.path.join(a.shared, "data/ham10000/images", image_id + ".jpg"), "rb").read()
        answers, maps = {}, {}
        for p, m in models.items():
            start = time.perf_counter()
            answers[p] = m.predict(data)
            top = answers["f32"]["top"][0]["label"]
            maps[p] = np.asarray(m.explain(data, target=top), dtype=np.float64).ravel()
            seconds[p] += time.perf_counter() - start
        agree += answers["f32"]["top"][0]["label"] == answers["bf16"]["top"][0]["label"]
        p32, p16 = answers["f32"]["probabilities"], answers["bf16"]["probabilities"]
        dp.extend(abs(p32[k] - p16[k]) for k in p32)
        x, y = maps["f32"], maps["bf16"]
        pearson.append(1.0 if x.std() == 0 and y.std() == 0 else float(np.corrcoef(x, y)[0, 1]))
    n, pearson = len(ids), np.array(pearson)
    print("model                 %s" % a.model)
    print("images                %d (HAM10000 test split)" % n)
    print("top-1 agreement       %.2f%% (%d of %d)   target >= 99.5%%" % (100.0 * agree / n, agree, n))
    print("mean |dp|             %.4f   target <= 0.005" % np.mean(dp))
    print("largest |dp|          %.4f" % np.max(dp))
    print("Grad-CAM Pearson      median %.4f, mean %.4f, lowest %.4f, %.1f%% at least 0.99   target >= 0.99"
          % (np.median(pearson), pearson.mean(), pearson.min(), 100.0 * np.mean(pearson >= 0.99)))
    print("predict + explain     f32 %.1f ms, bf16 %.1f ms per image (means, %s threads)"
          % (1000 * seconds["f32"] / n, 1000 * seconds["bf16"] / n, a.threads or "all"))


if __name__ == "__main__":
    main()
