#!/usr/bin/python3
"""Writes the grayscale test models and their PyTorch reference (tests/data/gray/):

    /usr/bin/python3 tools/reference/make_gray_models.py [--shared ../shared]

- gray_nchw.onnx: a small CNN on a [1, 1, 28, 28] input, as MNIST models (the ONNX model zoo's
  mnist-8) have it; gray_nhwc.onnx: the same network on [1, 28, 28, 1], read through a
  Transpose(0, 3, 1, 2) as converters from TensorFlow write it. Seeded random weights.
- Each with a model card beside it (labels, x = (pixel / 255 - 0.45) / 0.25).
- reference.json: the probabilities of both on six HAM10000 test images, preprocessed with PIL
  as a grayscale model's user would (EXIF orientation, convert("L"), bilinear resize to 28x28),
  run by onnx_torch.py (torch.nn.functional, float64). Nothing here goes through Dermal.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import onnx_torch  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "tests", "data", "gray")
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
SIZE, MEAN, STD = 28, 0.45, 0.25


def network(nhwc):
    rng = np.random.default_rng(28)
    w1 = rng.uniform(-0.6, 0.6, (8, 1, 3, 3)).astype(np.float32)
    b1 = rng.uniform(-0.1, 0.1, 8).astype(np.float32)
    w2 = rng.uniform(-0.25, 0.25, (12, 8, 3, 3)).astype(np.float32)
    b2 = rng.uniform(-0.1, 0.1, 12).astype(np.float32)
    wf = rng.uniform(-0.5, 0.5, (7, 12)).astype(np.float32)
    bf = rng.uniform(-0.1, 0.1, 7).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (wf, "wf"), (bf, "bf")]]
    nodes = []
    x = "image"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["image"], ["image_nchw"], perm=[0, 3, 1, 2]))
        x = "image_nchw"
    nodes += [
        helper.make_node("Conv", [x, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    shape = [1, SIZE, SIZE, 1] if nhwc else [1, 1, SIZE, SIZE]
    graph = helper.make_graph(nodes, "gray", [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 7])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="make_gray_models.py")
    onnx.checker.check_model(model)
    return model


def test_images(shared, n):
    rows = []
    with open(os.path.join(shared, "data", "ham10000", "metadata.csv")) as f:
        for r in csv.DictReader(f):
            if r["split"] == "test":
                rows.append(r["image_id"])
            if len(rows) == n:
                break
    return rows


def preprocess(path):
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("L").resize((SIZE, SIZE), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float64) / 255.0
    return (x - MEAN) / STD  # [28, 28]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    ids = test_images(args.shared, 6)
    planes = np.stack([preprocess(os.path.join(args.shared, "data", "ham10000", "images", i + ".jpg")) for i in ids])
    ref = {"generator": "tools/reference/make_gray_models.py", "images": ids, "models": {}}
    for nhwc in (False, True):
        name = "gray_nhwc" if nhwc else "gray_nchw"
        model = network(nhwc)
        onnx.save(model, os.path.join(OUT, name + ".onnx"))
        card = {"name": name, "labels": CLASSES,
                "preprocess": {"scale": 1 / 255, "mean": [MEAN] * 3, "std": [STD] * 3}}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(card, f, indent=1)
        net = onnx_torch.Interpreter(model, torch.float64)
        x = torch.from_numpy(planes[:, :, :, None] if nhwc else planes[:, None, :, :])
        with torch.no_grad():
            probs = net.run({"image": x})["probabilities"].numpy()
        ref["models"][name] = probs.tolist()
        print(name, "top classes", probs.argmax(1).tolist())
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)


if __name__ == "__main__":
    main()
