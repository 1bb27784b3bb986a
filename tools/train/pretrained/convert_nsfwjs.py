#!/usr/bin/python3
"""Convert nsfwjs 4.4.0's MobileNetV2 (Keras 2.2.4, TF.js layers, uint8-quantised) to PyTorch and
check the conversion against TensorFlow.js running the same model on real HAM10000 train images.

    cd tools/train/pretrained && npm ci            # or: a copy of package.json/.npmrc/lock elsewhere
    node dump_nsfwjs.js DIR                         # DIR/model.json + DIR/weights.bin
    /usr/bin/python3 convert_nsfwjs.py DIR [--check 10] [--node-path .../node_modules]

Writes DIR/mobilenet_v2_nsfwjs.pt (state_dict of mobilenet_v2.MobileNetV2 with nsfwjs's head) and
DIR/quantization.json (per-tensor min and step size). Dequantisation is TF.js's own:
value = min + scale * q, q in 0..255 (so the error of each stored weight is at most scale / 2
against the float weights nsfwjs started from, which are not available).
--check N: N HAM10000 *train* images, resized as Dermal does (PIL bilinear, stretched to 224),
divided by 255 (nsfwjs's preprocessing), through both PyTorch and TF.js (check_tfjs.js, the pinned
tfjs-layers 4.22 + tfjs-backend-cpu); prints the largest absolute differences of the 1280-d pooled
features and of the nsfwjs head's 5 probabilities.
"""

import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mobilenet_v2 import MobileNetV2, load_keras_weights  # noqa: E402

SHARED = os.environ.get("DERMAL_SHARED_DIR", os.path.join(HERE, "..", "..", "..", "..", "shared"))


def read_weights(d):
    m = json.load(open(os.path.join(d, "model.json")))
    raw = np.fromfile(os.path.join(d, "weights.bin"), dtype=np.uint8)
    out, quant, off = {}, {}, 0
    for group in m["weightsManifest"]:
        for spec in group["weights"]:
            n = int(np.prod(spec["shape"])) if spec["shape"] else 1
            q = spec.get("quantization")
            assert q and q["dtype"] == "uint8", spec
            vals = raw[off:off + n].astype(np.float64) * q["scale"] + q["min"]
            off += n
            out[spec["name"]] = vals.astype(np.float32).reshape(spec["shape"])
            quant[spec["name"]] = {"min": q["min"], "scale": q["scale"], "shape": spec["shape"]}
    assert off == raw.size, (off, raw.size)
    return m, out, quant


def preprocess(path, size=224):
    im = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0  # HWC


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--check", type=int, default=0)
    ap.add_argument("--node-path", default=os.path.join(HERE, "node_modules"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    m, w, quant = read_weights(args.dir)
    layers = m["modelTopology"]["model_config"]["config"]["layers"]
    eps = {l["config"]["epsilon"] for l in layers if l["class_name"] == "BatchNormalization"}
    relu = {l["config"].get("max_value") for l in layers if l["class_name"] == "ReLU"}
    assert len(eps) == 1 and relu == {6}, (eps, relu)
    model = MobileNetV2(eps=eps.pop(), nsfw_head=True).eval()
    unused = load_keras_weights(model, w)
    assert not unused, unused
    torch.save({"state_dict": model.state_dict(), "source": "nsfwjs 4.4.0 dist/models/mobilenet_v2 (MIT)",
                "preprocess": "RGB / 255, 224x224"}, os.path.join(args.dir, "mobilenet_v2_nsfwjs.pt"))
    json.dump(quant, open(os.path.join(args.dir, "quantization.json"), "w"), indent=0)
    scales = np.array([q["scale"] for q in quant.values()])
    kinds = {}
    for name, q in quant.items():
        k = name.split("/")[-1]
        kinds.setdefault(k, []).append(q["scale"])
    print("%d tensors, %d parameters; dequantisation step (scale) per tensor: median %.3g, max %.3g"
          % (len(quant), sum(int(np.prod(q["shape"])) for q in quant.values()), np.median(scales), scales.max()))
    for k, v in sorted(kinds.items()):
        print("  %-18s %3d tensors: step min %.3g median %.3g max %.3g" % (k, len(v), min(v), np.median(v), max(v)))

    if args.check:
        ham = os.path.join(SHARED, "data", "ham10000")
        rows = [r for r in csv.DictReader(open(os.path.join(ham, "metadata.csv"))) if r["split"] == "train"]
        rows = rows[::len(rows) // args.check][:args.check]
        x = np.stack([preprocess(os.path.join(ham, "images", r["image_id"] + ".jpg")) for r in rows])
        inp = os.path.join(args.dir, "check_input.bin")
        x.astype(np.float32).tofile(inp)
        env = dict(os.environ, NODE_PATH=args.node_path)
        subprocess.run(["node", os.path.join(HERE, "check_tfjs.js"), args.dir, inp, str(len(rows))],
                       check=True, env=env)
        tf_feat = np.fromfile(os.path.join(args.dir, "check_tfjs_features.bin"), np.float32).reshape(len(rows), -1)
        tf_prob = np.fromfile(os.path.join(args.dir, "check_tfjs_probs.bin"), np.float32).reshape(len(rows), -1)
        with torch.no_grad():
            t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            f = model.pool(model.features(t)).flatten(1)
            p = torch.softmax(model.nsfw_head(f), 1)
        df, dp = np.abs(f.numpy() - tf_feat), np.abs(p.numpy() - tf_prob)
        print("check on %d HAM10000 train images: pooled features |max| %.3g, max abs diff %.3g (rel %.2e); "
              "nsfwjs probabilities max abs diff %.3g; top class agrees %d/%d"
              % (len(rows), np.abs(tf_feat).max(), df.max(), df.max() / np.abs(tf_feat).max(), dp.max(),
                 int((p.numpy().argmax(1) == tf_prob.argmax(1)).sum()), len(rows)))


if __name__ == "__main__":
    main()
