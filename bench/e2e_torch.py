"""The same job in Python, the way the app Dermal replaces did it: PIL decode, the model card's
preprocessing, the model in PyTorch eager (tools/reference/onnx_torch.py), autograd Grad-CAM from
the top logit, a NumPy jet colormap (no matplotlib), alpha blend, PNG encode with PIL.

/usr/bin/python3 bench/e2e_torch.py --image JPEG --model M --threads T --iters N
"""
import argparse
import io
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "reference"))
import onnx_torch  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def jet(v):
    """matplotlib's jet as piecewise-linear segments, v in [0, 1] -> uint8 RGB."""
    r = np.clip(np.minimum(4 * v - 1.5, -4 * v + 4.5), 0, 1)
    g = np.clip(np.minimum(4 * v - 0.5, -4 * v + 3.5), 0, 1)
    b = np.clip(np.minimum(4 * v + 0.5, -4 * v + 2.5), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--model", default="models/skinnet_mnv2_ham_isic224.onnx")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = onnx.load(a.model)
    net = onnx_torch.Interpreter(model, dtype=torch.float32)
    gap = next(n for n in model.graph.node if n.op_type == "GlobalAveragePool")
    layer, logits = gap.input[0], model.graph.output[0].name
    data = open(a.image, "rb").read()

    def tensor(img):
        x = np.asarray(img.resize((192, 192), Image.BILINEAR), np.float32) / 255.0
        return torch.from_numpy(((x - MEAN) / STD).transpose(2, 0, 1)[None].copy())

    def predict():
        img = Image.open(io.BytesIO(data)).convert("RGB")
        with torch.no_grad():
            return torch.softmax(net.run({"input": tensor(img)})[logits], 1)

    def explain():
        img = Image.open(io.BytesIO(data)).convert("RGB")
        out = net.run({"input": tensor(img)}, keep=[layer])
        y, act = out[logits], out[layer]
        probs = torch.softmax(y.detach(), 1)
        (grad,) = torch.autograd.grad(y[0, int(y[0].argmax())], [act])
        cam = F.relu((grad.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True)).detach()
        cam = F.interpolate(cam, size=(img.height, img.width), mode="bilinear", align_corners=False)[0, 0].numpy()
        cam = (cam - cam.min()) / max(cam.max() - cam.min(), 1e-12)
        blended = (0.6 * np.asarray(img, np.float32) + 0.4 * jet(cam)).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(blended).save(buf, format="PNG")
        return probs, len(buf.getvalue())

    def median_ms(f):
        for _ in range(a.warmup):
            f()
        t = []
        for _ in range(a.iters):
            s = time.perf_counter()
            f()
            t.append((time.perf_counter() - s) * 1e3)
        return statistics.median(t)

    print(json.dumps({"impl": "pytorch", "threads": a.threads, "iters": a.iters,
                      "predict_ms": median_ms(predict), "predict_gradcam_overlay_ms": median_ms(explain)}))


if __name__ == "__main__":
    main()
