#!/usr/bin/python3
"""Check an exported model end to end: Dermal's probabilities for real test images against the
PyTorch network it was exported from (the training checkpoint, prior correction and temperature
applied as export_onnx.py applies them, preprocessing by PIL as in select_model.py).

    /usr/bin/python3 tools/train/check_export.py RUN/model.pt models/NAME.onnx [--images 40]

Prints the largest probability difference and the share of images whose top class agrees; exits 1
if the difference exceeds 1e-4 or any top class differs.
"""

import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from select_model import SHARED, load, preprocess  # noqa: E402
from train import CLASSES  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("onnx")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--prior-correction", type=float, default=-1.0)
    ap.add_argument("--dermal", default=os.path.join(ROOT, "build", "dermal"))
    args = ap.parse_args()

    model, ckpt = load(args.checkpoint)
    with torch.no_grad():
        model.fc.bias += args.prior_correction * torch.log(torch.tensor(ckpt["prior"]))
    t = json.load(open(os.path.splitext(args.onnx)[0] + ".json"))["temperature"]
    ham = os.path.join(SHARED, "data", "ham10000")
    rows = [r for r in csv.DictReader(open(os.path.join(ham, "metadata.csv"))) if r["split"] == "test"]
    paths = [os.path.join(ham, "images", r["image_id"] + ".jpg") for r in rows[:args.images]]
    with torch.no_grad():
        x = torch.from_numpy(np.stack([preprocess(p, ckpt["size"]) for p in paths]))
        ref = torch.softmax(model(x) / t, 1).numpy()
    out = subprocess.run([args.dermal, "predict", "--model", args.onnx, "--threads", "1", "--json"] + paths,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    got = np.array([[json.loads(line)["probabilities"][c] for c in CLASSES] for line in out])
    diff, agree = float(np.abs(got - ref).max()), float((got.argmax(1) == ref.argmax(1)).mean())
    print("%d images: max |probability difference| %.2e, top class agrees on %.0f%%" % (len(got), diff, 100 * agree))
    sys.exit(0 if diff <= 1e-4 and agree == 1.0 else 1)


if __name__ == "__main__":
    main()
