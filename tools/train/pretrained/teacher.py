#!/usr/bin/python3
"""A teacher's probabilities on the train and val images, for distillation (finetune_full.py
--teacher): Dermal runs the teacher model file (an ONNX ensemble from ensemble.py, say) on each
image as it serves it, at temperature 1, so the targets are the teacher's own balanced
(prior-corrected) probabilities, not its calibrated ones.

    /usr/bin/python3 teacher.py MODEL.onnx OUT.npz [--dermal build/dermal] [--threads 2]

OUT.npz: probs [n, 7] float32 and ids, in extract.items({"train", "val"}) order. Test images are
never read.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from extract import CLASSES, items  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--dermal", default=os.path.join(HERE, "..", "..", "..", "build", "dermal"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=400)
    args = ap.parse_args()
    its = items({"train", "val"})
    probs = np.zeros((len(its), len(CLASSES)), np.float32)
    t0 = time.time()
    for s in range(0, len(its), args.chunk):
        paths = [it[0] for it in its[s:s + args.chunk]]
        out = subprocess.run([args.dermal, "predict", "--model", args.model, "--threads", str(args.threads),
                              "--temperature", "1", "--lesion-check", "off", "--json"] + paths,
                             capture_output=True, text=True, check=True).stdout.splitlines()
        if len(out) != len(paths):
            sys.exit("dermal answered %d lines for %d images" % (len(out), len(paths)))
        probs[s:s + len(paths)] = [[json.loads(line)["probabilities"][c] for c in CLASSES] for line in out]
        print("%d/%d images, %.0f s" % (s + len(paths), len(its), time.time() - t0), flush=True)
    labels = np.array([it[1] for it in its])
    train = np.array([it[3] == 0 for it in its])
    print("teacher top-1 accuracy: train %.3f, val %.3f" % ((probs.argmax(1) == labels)[train].mean(),
                                                           (probs.argmax(1) == labels)[~train].mean()))
    np.savez(args.out, probs=probs, ids=np.array([it[4] for it in its]))


if __name__ == "__main__":
    main()
