#!/usr/bin/python3
"""Choose the shipped model among trained runs, on the validation images only.

    /usr/bin/python3 tools/train/select_model.py RUN/model.pt [RUN/model.pt ...] [--max-mb 25]

Runs every model on HAM10000's val split and the ISIC 2017 val part, from the original files
with Dermal's preprocessing (PIL bilinear resize, stretched, to the model's input), and prints for
each single model and each pair that fits the weight budget (a pair is shipped as one network:
both feature maps concatenated, one averaged linear head):
HAM10000 balanced accuracy and melanoma recall, ISIC 2017 melanoma-vs-rest AUC.
For each it also fits the prior correction alpha (logits + alpha * log prior, on a grid) that
maximises HAM10000 val balanced accuracy. Logits are cached beside the first model.
The test images are never read.
"""

import argparse
import csv
import itertools
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import build  # noqa: E402
from train import CLASSES, MEAN, MEL, STD, roc_auc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared")


def val_images():
    """(path, label index, is_isic) for the validation images of both sources."""
    out = []
    ham = os.path.join(SHARED, "data", "ham10000")
    for r in csv.DictReader(open(os.path.join(ham, "metadata.csv"))):
        if r["split"] == "val":
            out.append((os.path.join(ham, "images", r["image_id"] + ".jpg"), CLASSES.index(r["dx"]), False))
    isic = os.path.join(SHARED, "data", "isic2017", "images")
    for r in csv.DictReader(open(os.path.join(HERE, "isic2017_split.csv"))):
        if r["split"] == "val":
            out.append((os.path.join(isic, r["image_id"] + ".jpg"), CLASSES.index(r["dx"]), True))
    return out


def preprocess(path, size):
    im = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(im, dtype=np.float32) / 255.0
    return ((x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)


def load(path):
    # Checkpoints written by NumPy 2 (the GPU machine) name numpy._core; Debian's NumPy 1 calls it numpy.core.
    if not hasattr(np, "_core"):
        sys.modules.setdefault("numpy._core", np.core)
        sys.modules.setdefault("numpy._core.multiarray", np.core.multiarray)
    ckpt = torch.load(path, map_location="cpu")
    model = build(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


@torch.no_grad()
def logits_of(model, batch):
    return torch.cat([model(torch.from_numpy(batch[i:i + 64])) for i in range(0, len(batch), 64)]).numpy()


def metrics(logits, labels, is_isic):
    pred = logits.argmax(1)
    ham = ~is_isic
    recalls = [float((pred[ham & (labels == c)] == c).mean()) for c in range(len(CLASSES))]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return {"bal_acc": float(np.mean(recalls)), "mel_recall": recalls[MEL],
            "isic_auc": roc_auc(p[is_isic, MEL], labels[is_isic] == MEL)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--max-mb", type=float, default=25.0)
    args = ap.parse_args()

    items = val_images()
    labels = np.array([i[1] for i in items])
    is_isic = np.array([i[2] for i in items])
    cache = os.path.join(os.path.dirname(args.models[0]), "..", "val_logits.npz")
    cached = dict(np.load(cache)) if os.path.exists(cache) else {}
    logits, mb, prior = {}, {}, {}
    batches = {}
    for path in args.models:
        model, ckpt = load(path)
        key = os.path.abspath(path)
        mb[path] = sum(v.numel() * 4 for v in ckpt["state_dict"].values() if v.dtype == torch.float32 and v.ndim > 1) / 1e6
        prior[path] = np.log(np.array(ckpt["prior"]))
        if key not in cached:
            size = ckpt["size"]
            if size not in batches:
                batches[size] = np.stack([preprocess(i[0], size) for i in items])
            cached[key] = logits_of(model, batches[size])
            np.savez(cache, **cached)
        logits[path] = cached[key]

    def report(name, z, log_prior, size_mb):
        best_alpha, best = 0.0, metrics(z, labels, is_isic)
        for alpha in np.linspace(-1, 1, 41):
            m = metrics(z + alpha * log_prior, labels, is_isic)
            if m["bal_acc"] > best["bal_acc"] + 1e-9:
                best_alpha, best = float(alpha), m
        plain = metrics(z, labels, is_isic)
        print("%-60s %5.1f MB | bal acc %.4f mel rec %.3f ISIC AUC %.4f | alpha %+.2f: bal acc %.4f mel rec %.3f"
              % (name, size_mb, plain["bal_acc"], plain["mel_recall"], plain["isic_auc"], best_alpha,
                 best["bal_acc"], best["mel_recall"]))

    short = {p: os.path.basename(os.path.dirname(p)) for p in args.models}
    for p in args.models:
        report(short[p], logits[p], prior[p], mb[p])
    for p, q in itertools.combinations(args.models, 2):
        if mb[p] + mb[q] <= args.max_mb:
            report(short[p] + " + " + short[q], (logits[p] + logits[q]) / 2, (prior[p] + prior[q]) / 2, mb[p] + mb[q])


if __name__ == "__main__":
    main()
