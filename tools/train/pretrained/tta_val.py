#!/usr/bin/python3
"""Test-time augmentation measured on the validation images only: Dermal predicts each HAM10000
and ISIC 2017 validation image as it is and under each symmetry of the square (the dihedral views
the training augmentation draws from), then scores single views and averages of views.

    /usr/bin/python3 tta_val.py OUT_DIR [--model M] [--views id,hflip,...] [--dermal build/dermal]

OUT_DIR keeps the transformed copies (PNG, lossless) and each view's probabilities (VIEW.npy, in
extract.items({"val"}) order, temperature 1), so a rerun only scores. Test images are never read.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from extract import CLASSES, items  # noqa: E402

VIEWS = {"id": lambda a: a, "hflip": lambda a: a[:, ::-1], "vflip": lambda a: a[::-1], "rot90": lambda a: np.rot90(a),
         "rot180": lambda a: np.rot90(a, 2), "rot270": lambda a: np.rot90(a, 3), "transpose": lambda a: a.transpose(1, 0, 2),
         "antitranspose": lambda a: np.rot90(a, 2).transpose(1, 0, 2)}


def predict(args, view, its):
    path = os.path.join(args.out, view + ".npy")
    if os.path.exists(path):
        return np.load(path)
    folder = os.path.join(args.out, view)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for it in its:
        if view == "id":
            paths.append(it[0])
            continue
        p = os.path.join(folder, it[4] + ".png")
        if not os.path.exists(p):
            a = np.asarray(Image.open(it[0]).convert("RGB"))
            Image.fromarray(np.ascontiguousarray(VIEWS[view](a))).save(p, compress_level=1)
        paths.append(p)
    start, probs = time.time(), []
    for s in range(0, len(paths), 300):
        cmd = [args.dermal, "predict", "--threads", str(args.threads), "--temperature", "1", "--lesion-check", "off", "--json"]
        if args.model:
            cmd += ["--model", args.model]
        out = subprocess.run(cmd + paths[s:s + 300], capture_output=True, text=True, check=True).stdout.splitlines()
        probs += [[json.loads(line)["probabilities"][c] for c in CLASSES] for line in out]
    probs = np.array(probs, np.float32)
    np.save(path, probs)
    print("%s: %d images, %.0f s" % (view, len(probs), time.time() - start), file=sys.stderr, flush=True)
    return probs


def auc(score, positive):
    ranks = np.empty(len(score))
    ranks[np.argsort(score)] = np.arange(1, len(score) + 1)
    n1 = positive.sum()
    return (ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(score) - n1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--model", default="")
    ap.add_argument("--views", default=",".join(VIEWS))
    ap.add_argument("--dermal", default=os.path.join(HERE, "..", "..", "..", "build", "dermal"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    its = items({"val"})
    labels = np.array([it[1] for it in its])
    isic = np.array([it[2] for it in its])
    mel = CLASSES.index("mel")
    probs = {v: predict(args, v, its) for v in args.views.split(",")}

    def row(name, p):
        pred, ham = p.argmax(1), ~isic
        recalls = [np.mean(pred[ham & (labels == c)] == c) for c in range(len(CLASSES)) if (ham & (labels == c)).any()]
        print("| %s | %.1f%% | %.1f%% | %.3f |" % (name, 100 * np.mean(recalls), 100 * np.mean(pred[ham & (labels == mel)] == mel),
                                                auc(p[isic, mel], labels[isic] == mel)))

    print("| views | HAM val bal. acc | mel recall | ISIC val mel AUC |\n|---|---|---|---|")
    for v, p in probs.items():
        row(v, p)
    for group in (["id", "hflip"], ["id", "vflip"], ["id", "hflip", "vflip", "rot180"], list(VIEWS)):
        if all(v in probs for v in group):
            row("mean of " + " + ".join(group) if len(group) < len(VIEWS) else "mean of all 8", np.mean([probs[v] for v in group], 0))


if __name__ == "__main__":
    main()
