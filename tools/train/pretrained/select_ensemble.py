#!/usr/bin/python3
"""Chooses the bundled ensemble on validation only, from each candidate member's validation logits:

    /usr/bin/python3 select_ensemble.py NAME=VAL_LOGITS.npy[:T] ... [--combos A+B,A+B+C | --max-members 4]

VAL_LOGITS holds one row per validation image in tools/train/pretrained/extract.items({"val"})
order, prior-corrected (export.py writes them so; for a model's probabilities, pass the .npy of
probabilities with a "p:" prefix: their logarithm differs from the logits by one constant per image,
which softmax ignores). T is the member's card temperature. An ensemble's logit is the equal-weight
mean of z_i / T_i, as ensemble.py builds it. The score is the one finetune.py selects epochs on:
HAM10000 balanced accuracy + ISIC 2017 melanoma AUC; the test sets are never read here.

    /usr/bin/python3 select_ensemble.py NAME=DIR[:T] ...

With a folder per member (tta_val.py's OUT_DIR: each view's probabilities at temperature 1, VIEW.npy),
every figure is the mean over the 8 views of the square's symmetries of that view's figure: the
same network scores 74-80% on the identity view's 1,006 HAM10000 images depending only on their
orientation (NOTES.md, fifth session), so the identity view alone ranks candidates by noise.

    --agreement             how often each pair of members picks the same top class (first view)
    --mel-offsets 0,0.2,... each set's melanoma operating point: a constant added to the mel logit
                            of its average (before any temperature, which the argmax ignores)
"""

import argparse
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract import items  # noqa: E402
from tta_val import VIEWS  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from export_onnx import ece, fit_temperature  # noqa: E402
from finetune import MEL, metrics  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("members", nargs="+", help="NAME=[p:]FILE.npy[:T] or NAME=DIR[:T]")
    ap.add_argument("--combos", default="", help="comma-separated NAME+NAME sets (default: every set of 1 to --max-members)")
    ap.add_argument("--max-members", type=int, default=4, help="the largest set tried when --combos is not given")
    ap.add_argument("--agreement", action="store_true", help="print the members' pairwise top-class agreement")
    ap.add_argument("--mel-offsets", default="", help="comma-separated mel logit offsets: print each set's operating points")
    args = ap.parse_args()
    if args.max_members < 1:
        ap.error("--max-members must be at least 1")
    val = items({"val"})
    labels = np.array([v[1] for v in val])
    is_isic = np.array([v[2] for v in val])
    z = {}
    for m in args.members:
        name, _, spec = m.partition("=")
        probs = spec.startswith("p:")
        spec = spec[2:] if probs else spec
        path, _, t = spec.partition(":")
        folder = os.path.isdir(path)  # tta_val.py's probabilities, one file a view
        views = [np.load(os.path.join(path, v + ".npy")) for v in VIEWS] if folder else [np.load(path)]
        for x in views:
            if len(x) != len(val):
                sys.exit("%s has %d rows for %d validation images" % (path, len(x), len(val)))
        z[name] = [(np.log(np.clip(x.astype(np.float64), 1e-12, 1)) if probs or folder else x) / float(t or 1)
                   for x in views]
    if len({len(v) for v in z.values()}) != 1:
        sys.exit("give every member as a folder of views, or every member as one file")
    combos = [c.split("+") for c in args.combos.split(",")] if args.combos else [
        list(c) for k in range(1, min(len(z), args.max_members) + 1) for c in itertools.combinations(z, k)]
    rows = []
    for c in combos:
        per_view = [np.mean([z[n][v] for n in c], 0) for v in range(len(z[c[0]]))]
        ms = [metrics(zc, labels, is_isic, np.zeros(7), alpha=0.0) for zc in per_view]
        m = {k: float(np.mean([x[k] for x in ms])) for k in ("bal_acc", "mel_recall", "isic_auc", "isic_bal_acc")}
        m["recalls"] = [round(float(r), 3) for r in np.mean([x["recalls"] for x in ms], 0)]
        zc = np.concatenate(per_view)  # the card's temperature, as export.py fits it, over every view
        yc = np.tile(labels, len(per_view))
        t, _, _ = fit_temperature(zc, yc)
        spread = np.std([x["bal_acc"] for x in ms])
        rows.append((m["bal_acc"] + m["isic_auc"], "+".join(c), m, spread, t, ece(zc, yc, 1.0), ece(zc, yc, t)))
    for score, name, m, spread, t, e1, et in sorted(rows, reverse=True):
        print("%-28s score %.4f | HAM bal acc %.4f (sd over views %.3f) mel rec %.3f | ISIC AUC %.4f ISIC bal acc %.4f | "
              "recalls %s | temperature %.3f (ECE %.3f -> %.3f)"
              % (name, score, m["bal_acc"], spread, m["mel_recall"], m["isic_auc"], m["isic_bal_acc"], m["recalls"], t, e1, et))
    if args.agreement:
        top = {n: v[0].argmax(1) for n, v in z.items()}
        for a, b in itertools.combinations(z, 2):
            print("agreement %s / %s: %.3f" % (a, b, np.mean(top[a] == top[b])))
    if args.mel_offsets:
        for c in combos:
            per_view = [np.mean([z[n][v] for n in c], 0) for v in range(len(z[c[0]]))]
            for offset in (float(o) for o in args.mel_offsets.split(",")):
                shift = np.zeros(7)
                shift[MEL] = offset
                ms = [metrics(zc, labels, is_isic, shift, alpha=1.0) for zc in per_view]
                flagged = [np.mean((zc + shift)[~is_isic & (labels != MEL)].argmax(1) == MEL) for zc in per_view]
                isic_mel = [np.mean((zc + shift)[is_isic & (labels == MEL)].argmax(1) == MEL) for zc in per_view]
                print("%-28s mel offset %+.2f | HAM bal acc %.4f mel rec %.3f non-mel called mel %.3f | ISIC mel rec %.3f"
                      % ("+".join(c), offset, np.mean([x["bal_acc"] for x in ms]), np.mean([x["mel_recall"] for x in ms]),
                         np.mean(flagged), np.mean(isic_mel)))


if __name__ == "__main__":
    main()
