#!/usr/bin/python3
"""Export a finetune.py run as one plain network (nsfwjs MobileNetV2 backbone with the fine-tuned
block_13..Conv_1, global average pool, Gemm head) to ONNX, with Dermal's model card.

    OMP_NUM_THREADS=1 /usr/bin/python3 export.py WEIGHTS.pt RUN/model.pt --name NAME --out DIR \
        [--prior-correction -1] [--compare 40]

1. Prior correction alpha * log(training prior) is folded into the head's bias (alpha = -1: no
   class is favoured a priori, what balanced accuracy and melanoma recall ask for).
2. Temperature: fitted on the validation images (HAM10000 val + ISIC 2017 val, run from the
   original files with Dermal's preprocessing: PIL bilinear, stretched to 224x224, /255) by
   minimising the NLL on a grid (export_onnx.fit_temperature); written to the card.
3. ONNX opset 13 (BatchNormalization folded into Conv), input `input` [N, 3, 224, 224], output
   `logits` [N, 7]; the card NAME.json beside it; NAME.pt (the full PyTorch model) for checks.
--compare N: Dermal (build/dermal predict, 1 thread) against PyTorch on N *validation* images:
   largest probability difference and top-class agreement.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from mobilenet_v2 import MobileNetV2  # noqa: E402
from extract import CLASSES, SPLIT_AT, items  # noqa: E402
from export_onnx import NAMES, ece, fit_temperature  # noqa: E402
from finetune import metrics  # noqa: E402


class Classifier(nn.Module):
    """Shared stem (features[:split_at]); one fine-tuned tail per run. With several runs their
    1280-channel maps are concatenated and one Gemm averages their heads' logits exactly (Grad-CAM's
    default layer is then the concatenation: the last spatial tensor before the pooling)."""

    def __init__(self, tails=1, split_at=SPLIT_AT):
        super().__init__()
        self.stem = MobileNetV2().features[:split_at]
        self.tails = nn.ModuleList([MobileNetV2().features[split_at:] for _ in range(tails)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1280 * tails, len(CLASSES))

    def forward(self, x):
        x = self.stem(x)
        maps = [t(x) for t in self.tails]
        x = maps[0] if len(maps) == 1 else torch.cat(maps, 1)
        return self.fc(torch.flatten(self.pool(x), 1))


def stage_name(i):
    """Keras name of MobileNetV2's features[i]: Conv1, expanded_conv, block_1..block_16, Conv_1."""
    return ["Conv1", "expanded_conv"][i] if i < 2 else "block_%d" % (i - 1) if i < 18 else "Conv_1"


def build(weights, runs, alpha):
    m = MobileNetV2(nsfw_head=True)
    m.load_state_dict(torch.load(weights, map_location="cpu")["state_dict"])
    ckpts = [torch.load(run, map_location="cpu") for run in runs]
    cuts = {c.get("split_at", 14) for c in ckpts}  # runs from before the option were cut after block_12
    assert len(cuts) == 1, "the runs were trained on maps cut at different stages: %s" % sorted(cuts)
    split_at = cuts.pop()
    model = Classifier(len(runs), split_at)
    model.stem.load_state_dict(m.features[:split_at].state_dict())
    ws, bs = [], []
    for i, ckpt in enumerate(ckpts):
        sd = ckpt["state_dict"]
        model.tails[i].load_state_dict({k[len("tail."):]: v for k, v in sd.items() if k.startswith("tail.")})
        ws.append(sd["fc.weight"] / len(runs))
        bs.append((sd["fc.bias"] + alpha * torch.log(torch.tensor(ckpt["prior"], dtype=torch.float32))) / len(runs))
    with torch.no_grad():
        model.fc.weight.copy_(torch.cat(ws, 1))
        model.fc.bias.copy_(sum(bs))
    return model.eval(), ckpts


def fold_pads(path, model):
    """Fold each ZeroPad2d of `model` into the ONNX Conv it feeds (ONNX Conv pads are
    [top, left, bottom, right], so Keras' asymmetric stride-2 padding needs no Pad node). PyTorch
    exports F.pad's pads as a small Reshape/Slice/Cast subgraph, not a constant: every ZeroPad2d here
    has the same padding, so each Pad node gets it (checked: as many Pad nodes as ZeroPad2d
    modules), and the subgraph is removed once nothing uses it."""
    import onnx
    paddings = {tuple(mod.padding) for mod in model.modules() if isinstance(mod, nn.ZeroPad2d)}
    count = sum(isinstance(mod, nn.ZeroPad2d) for mod in model.modules())
    assert len(paddings) == 1, paddings  # every Pad node is then one of these: (left, right, top, bottom)
    left, right, top, bottom = paddings.pop()
    m = onnx.load(path)
    g = m.graph
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    removed = []
    for n in list(g.node):
        if n.op_type != "Pad":
            continue
        nxt = users.get(n.output[0], [])
        assert len(nxt) == 1 and nxt[0].op_type == "Conv", n.name
        conv = nxt[0]
        old = [0, 0, 0, 0]
        for a in list(conv.attribute):
            if a.name == "pads":
                old = list(a.ints)
                conv.attribute.remove(a)
        conv.attribute.append(onnx.helper.make_attribute("pads", [o + p for o, p in zip(old, [top, left, bottom, right])]))
        conv.input[0] = n.input[0]
        g.node.remove(n)
        removed.append(n.name)
    assert len(removed) == count, (removed, count)
    outputs = {o.name for o in g.output}
    while True:  # drop nodes whose outputs nothing reads (the pads subgraphs)
        used = {i for n in g.node for i in n.input} | outputs
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    onnx.checker.check_model(m)
    onnx.save(m, path)
    print("folded %d Pad nodes into their convolutions; %d nodes left" % (len(removed), len(g.node)))


def load_image(path):
    im = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
    return (np.asarray(im, dtype=np.float32) / 255.0).transpose(2, 0, 1)


@torch.no_grad()
def logits_of(model, paths):
    out = []
    for i in range(0, len(paths), 32):
        out.append(model(torch.from_numpy(np.stack([load_image(p) for p in paths[i:i + 32]]))))
    return torch.cat(out).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("runs", nargs="+", help="RUN/model.pt of finetune.py; several: one ensemble network")
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prior-correction", type=float, default=-1.0)
    ap.add_argument("--compare", type=int, default=0)
    ap.add_argument("--dermal", default=os.path.join(ROOT, "build", "dermal"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    model, ckpts = build(args.weights, args.runs, args.prior_correction)
    val = items({"val"})
    paths = [v[0] for v in val]
    labels = np.array([v[1] for v in val])
    is_isic = np.array([v[2] for v in val])
    t0 = time.time()
    z = logits_of(model, paths)
    np.save(os.path.join(args.out, args.name + ".val_logits.npy"), z)
    m = metrics(z, labels, is_isic, np.zeros(len(CLASSES)), alpha=0.0)  # correction already in the bias
    t, nll1, nllt = fit_temperature(z, labels)
    print("val (%d images, full network from the files, %.0f s): HAM bal acc %.4f mel recall %.3f recalls %s, "
          "ISIC AUC %.4f | temperature %.3f: NLL %.4f -> %.4f, ECE %.4f -> %.4f"
          % (len(paths), time.time() - t0, m["bal_acc"], m["mel_recall"], m["recalls"], m["isic_auc"], t, nll1,
             nllt, ece(z, labels, 1.0), ece(z, labels, t)))

    onnx_path = os.path.join(args.out, args.name + ".onnx")
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), onnx_path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    fold_pads(onnx_path, model)
    torch.save(model.state_dict(), os.path.join(args.out, args.name + ".pt"))
    params = sum(p.numel() for p in model.parameters())
    card = {
        "name": args.name,
        "description": ("Dermal's default classifier: MobileNetV2 (alpha 1.0, 224x224, %s%.2f M parameters) whose "
                        "ImageNet-pretrained weights come from npm's nsfwjs 4.4.0 (MIT license; Keras 2.2.4 "
                        "MobileNetV2 transfer-learned from ImageNet by the nsfwjs authors, shipped uint8-"
                        "quantised and dequantised here); %s to Conv_1 fine-tuned and a new 7-class head "
                        "trained on HAM10000 and ISIC 2017 with tools/train/pretrained (runs and results: "
                        "tools/train/NOTES.md). Not a medical device."
                        % ("%d fine-tuned tails averaged, " % len(args.runs) if len(args.runs) > 1 else "",
                           params / 1e6, stage_name(len(model.stem)))),
        "labels": [{"code": c, "name": NAMES[c][0], "malignant": NAMES[c][1]} for c in CLASSES],
        "input": {"name": "input", "width": 224, "height": 224, "layout": "nchw"},
        "preprocess": {"resize": "bilinear", "keep_aspect": False, "scale": 1 / 255.0,
                       "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "channel_order": "rgb"},
        "explain": {"layer": "auto"},
        "temperature": round(t, 4),
        "license": ("Backbone weights: nsfwjs (MIT), from ImageNet pre-training. Fine-tuned on HAM10000 "
                    "(CC BY-NC-SA 4.0) and ISIC 2017 archive images (CC-0 / CC BY-NC): non-commercial use only."),
    }
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print("wrote %s (%.1f MB) and its card" % (onnx_path, os.path.getsize(onnx_path) / 1e6))

    if args.compare:
        sel = paths[::max(1, len(paths) // args.compare)][:args.compare]
        with torch.no_grad():
            ref = torch.softmax(torch.from_numpy(logits_of(model, sel)) / t, 1).numpy()
        out = subprocess.run([args.dermal, "predict", "--model", onnx_path, "--threads", "1", "--json"] + sel,
                             capture_output=True, text=True, check=True).stdout.splitlines()
        got = np.array([[json.loads(line)["probabilities"][c] for c in CLASSES] for line in out])
        diff, agree = float(np.abs(got - ref).max()), float((got.argmax(1) == ref.argmax(1)).mean())
        print("compare on %d val images: Dermal vs PyTorch max |probability difference| %.2e, top class agrees "
              "on %.0f%%" % (len(got), diff, 100 * agree))


if __name__ == "__main__":
    main()
