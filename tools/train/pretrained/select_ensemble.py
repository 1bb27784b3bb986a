#!/usr/bin/python3
"""Chooses the bundled ensemble on validation only, from each candidate member's validation logits:

    /usr/bin/python3 select_ensemble.py NAME=VAL_LOGITS.npy[:T] ... [--combos A+B,A+B+C]

VAL_LOGITS holds one row per validation image in tools/train/pretrained/extract.items({"val"})
order, prior-corrected (export.py writes them so; for a model's probabilities, pass the .npy of
probabilities with a "p:" prefix: their logarithm differs from the logits by one constant per image,
which softmax ignores). T is the member's card temperature. An ensemble's logit is the equal-weight
mean of z_i / T_i, as ensemble.py builds it. The score is the one finetune.py selects epochs on:
HAM10000 balanced accuracy + ISIC 2017 melanoma AUC; the test sets are never read here.
"""

import argparse
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract import items  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from export_onnx import ece, fit_temperature  # noqa: E402
from finetune import metrics  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("members", nargs="+", help="NAME=[p:]FILE.npy[:T]")
    ap.add_argument("--combos", default="", help="comma-separated NAME+NAME sets (default: every set of 1 to 3)")
    args = ap.parse_args()
    val = items({"val"})
    labels = np.array([v[1] for v in val])
    is_isic = np.array([v[2] for v in val])
    z = {}
    for m in args.members:
        name, _, spec = m.partition("=")
        probs = spec.startswith("p:")
        spec = spec[2:] if probs else spec
        path, _, t = spec.partition(":")
        x = np.load(path).astype(np.float64)
        if len(x) != len(val):
            sys.exit("%s has %d rows for %d validation images" % (path, len(x), len(val)))
        z[name] = (np.log(np.clip(x, 1e-12, 1)) if probs else x) / float(t or 1)
    combos = [c.split("+") for c in args.combos.split(",")] if args.combos else [
        list(c) for k in (1, 2, 3) for c in itertools.combinations(z, k)]
    rows = []
    for c in combos:
        zc = np.mean([z[n] for n in c], 0)
        m = metrics(zc, labels, is_isic, np.zeros(7), alpha=0.0)
        t, _, _ = fit_temperature(zc, labels)  # the card's temperature, as export.py fits it
        rows.append((m["bal_acc"] + m["isic_auc"], "+".join(c), m, t, ece(zc, labels, 1.0), ece(zc, labels, t)))
    for score, name, m, t, e1, et in sorted(rows, reverse=True):
        print("%-28s score %.4f | HAM bal acc %.4f mel rec %.3f | ISIC AUC %.4f ISIC bal acc %.4f | recalls %s | "
              "temperature %.3f (ECE %.3f -> %.3f)"
              % (name, score, m["bal_acc"], m["mel_recall"], m["isic_auc"], m["isic_bal_acc"], m["recalls"], t, e1, et))


if __name__ == "__main__":
    main()
