#!/usr/bin/python3
"""Dermal against TensorFlow.js on real TF.js layers models: npm's nsfwjs MobileNetV2 (224) and
InceptionV3 (299), Keras 2.2.4 models with uint8-quantised weights (one and six shards).

For each model: unwrap_nsfwjs.js writes model.json + shards; `dermal inspect` loads it; the first
N images of HAM10000's test split are resized once here (PIL, bilinear, RGB) to the model's input
and saved as PNG, so that both sides read the same pixels; TensorFlow.js (predict_tfjs.js:
tfjs-layers loading the same files) and `dermal predict` (a card: no resize, pixel / 255) classify
them. Prints the largest probability difference and the top-1 agreement.

  /usr/bin/python3 tools/tfjs/check_nsfwjs.py --dermal build/dermal --out /tmp/nsfwjs_check [--n 10]
nsfwjs comes from NODE_PATH or tools/train/pretrained (npm ci there); tfjs from tools/keras_reference.
"""
import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
MODELS = {"mobilenet_v2": 224, "inception_v3": 299}
LABELS = ["drawing", "hentai", "neutral", "porn", "sexy"]  # nsfwjs's class order


def test_images(shared, n):
    with open(shared / "data" / "ham10000" / "metadata.csv") as f:
        ids = [r["image_id"] for r in csv.DictReader(f) if r["split"] == "test"][:n]
    return [shared / "data" / "ham10000" / "images" / f"{i}.jpg" for i in ids]


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dermal", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent.parent / "shared")
    ap.add_argument("--n", type=int, default=10)
    args = ap.parse_args()
    images = test_images(args.shared, args.n)
    worst = 0.0
    for model, size in MODELS.items():
        d = args.out / model
        print(run(["node", str(HERE / "unwrap_nsfwjs.js"), model, str(d)]).strip())
        print("  " + run([args.dermal, "inspect", str(d / "model.json")]).splitlines()[0])
        png_dir = args.out / f"inputs_{size}"
        png_dir.mkdir(parents=True, exist_ok=True)
        pngs, pixels = [], []
        for src in images:
            img = Image.open(src).convert("RGB").resize((size, size), Image.BILINEAR)
            png = png_dir / (src.stem + ".png")
            img.save(png)
            pngs.append(png)
            pixels.append(np.asarray(img, dtype=np.uint8))
        (args.out / f"inputs_{size}.u8").write_bytes(np.stack(pixels).tobytes())
        card = d / "card.json"
        card.write_text(json.dumps({"name": f"nsfwjs {model}", "labels": LABELS,
                                    "input": {"width": size, "height": size, "layout": "nhwc"},
                                    "preprocess": {"resize": "bilinear", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1]}}))
        print("  " + run(["node", str(HERE / "predict_tfjs.js"), str(d), str(args.out / f"inputs_{size}.u8"), str(len(pngs)),
                          str(d / "tfjs.json")]).strip())
        tfjs = json.loads((d / "tfjs.json").read_text())
        expected = np.array(tfjs["data"]).reshape(tfjs["shape"])
        t0 = time.time()
        lines = run([args.dermal, "predict", "--json", "--model", str(d / "model.json"), "--card", str(card),
                     "--lesion-check", "off", "--threads", "1"] + [str(p) for p in pngs]).splitlines()
        got = np.array([[json.loads(line)["probabilities"][label] for label in LABELS] for line in lines])
        diff = float(np.abs(got - expected).max())
        agree = int((got.argmax(1) == expected.argmax(1)).sum())
        worst = max(worst, diff)
        print(f"  dermal predict: {len(lines)} images in {time.time() - t0:.1f} s; max |p_dermal - p_tfjs| = {diff:.2e}, "
              f"top-1 agrees on {agree}/{len(lines)}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
