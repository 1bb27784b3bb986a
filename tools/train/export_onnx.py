#!/usr/bin/python3
"""Export a trained run to the ONNX file and model card that Dermal ships.

    /usr/bin/python3 tools/train/export_onnx.py RUN/model.pt --name NAME [--out models] \
        [--prior-correction -1]

1. Prior correction: the network was trained on a re-weighted sample, so its logits carry the
   class prior it saw (train.py saves it). Adding alpha * log(prior) to the logits (alpha = -1
   removes it entirely: every class equally likely a priori, which is what balanced accuracy and
   melanoma recall ask for) is folded into the final layer's bias, so the file is a plain network.
2. Temperature: fitted on the validation images (HAM10000 val + ISIC 2017 val) by minimising the
   negative log-likelihood of softmax(logits / T) on a fine grid; written to the card, where
   Dermal applies it. Argmax, and therefore Grad-CAM's default class, does not change.
3. ONNX opset 13 (BatchNormalization folded into Conv by the exporter), input `input`
   [N, 3, S, S], output `logits` [N, 7]; then the card NAME.json beside it.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from select_model import load, logits_of, preprocess, val_images  # noqa: E402
from train import CLASSES  # noqa: E402

NAMES = {
    "akiec": ("Actinic keratosis / intraepithelial carcinoma", True),
    "bcc": ("Basal cell carcinoma", True),
    "bkl": ("Benign keratosis-like lesion", False),
    "df": ("Dermatofibroma", False),
    "mel": ("Melanoma", True),
    "nv": ("Melanocytic nevus", False),
    "vasc": ("Vascular lesion", False),
}


def fit_temperature(logits, labels):
    def nll(t):
        z = logits / t
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(len(z)), labels] - np.log(np.exp(z).sum(1))).mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 801))
    losses = [nll(t) for t in grid]
    i = int(np.argmin(losses))
    return float(grid[i]), nll(1.0), losses[i]


def ece(logits, labels, t, bins=15):
    z = logits / t
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    conf, pred = p.max(1), p.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(conf[m].mean() - (pred[m] == labels[m]).mean())
    return float(total)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
    ap.add_argument("--prior-correction", type=float, default=-1.0)
    args = ap.parse_args()

    model, ckpt = load(args.checkpoint)
    size = ckpt["size"]
    with torch.no_grad():
        model.fc.bias += args.prior_correction * torch.log(torch.tensor(ckpt["prior"]))

    items = val_images()
    labels = np.array([i[1] for i in items])
    logits = logits_of(model, np.stack([preprocess(i[0], size) for i in items]))
    t, nll_before, nll_after = fit_temperature(logits, labels)
    print("temperature %.3f: val NLL %.4f -> %.4f, ECE %.4f -> %.4f"
          % (t, nll_before, nll_after, ece(logits, labels, 1.0), ece(logits, labels, t)))

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, args.name + ".onnx")
    torch.onnx.export(model, torch.zeros(1, 3, size, size), onnx_path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    params = sum(p.numel() for p in model.parameters())
    cfg = ckpt["config"]
    card = {
        "name": args.name,
        "description": ("Dermal's default classifier: a small ResNet (basic blocks, widths %s, no max-pool, "
                        "%.1f M parameters) trained from scratch on HAM10000 and ISIC 2017 with "
                        "tools/train (recipe, runs and results: tools/train/NOTES.md). "
                        "Not a medical device." % ("-".join(map(str, cfg["widths"])), params / 1e6)),
        "labels": [{"code": c, "name": NAMES[c][0], "malignant": NAMES[c][1]} for c in CLASSES],
        "input": {"name": "input", "width": size, "height": size, "layout": "nchw"},
        "preprocess": {"resize": "bilinear", "keep_aspect": False, "scale": 1 / 255.0,
                       "mean": list(ckpt["mean"]), "std": list(ckpt["std"]), "channel_order": "rgb"},
        "explain": {"layer": "auto"},
        "temperature": round(t, 4),
        "license": ("Weights trained on HAM10000 (CC BY-NC-SA 4.0) and ISIC 2017 archive images "
                    "(CC-0 / CC BY-NC): non-commercial use only."),
    }
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print("wrote %s (%.1f MB) and its card; epochs %d, training %.0f s, val at selection %s"
          % (onnx_path, os.path.getsize(onnx_path) / 1e6, ckpt["epochs"], ckpt["train_seconds"],
             json.dumps({k: round(float(v), 4) for k, v in ckpt["best"].items()})))


if __name__ == "__main__":
    main()
