#!/usr/bin/python3
"""Phone-sized photos through `dermal serve` and through the seed app's stack, side by side.

Makes 12, 27 and 50 MP JPEGs and a 12 MP PNG and WebP from real HAM10000 test images (enlarged,
as a phone photographs a lesion that fills the frame), then for each:
  - Dermal: POST /api/predict with Grad-CAM (one thread, one client, warm): the server's own
    stage timings (`timings_ms`), the answer's size, and the process's peak RSS;
  - the Python peer, in this process: PIL with `draft` (JPEG DCT scaling, as PIL offers it) to the
    same display size, the model card's preprocessing, the same ONNX model in PyTorch eager
    (tools/reference/onnx_torch.py), autograd Grad-CAM, a jet overlay at the display size, PNG.
Then a fresh server under 8 clients uploading the 27 MP photos at once: its peak RSS.

    /usr/bin/python3 bench/phone_photos.py [--iters 5] [--clients 8] [--seconds 20] [--json out.json]

Medians; both sides on one thread (THREADS=1, torch.set_num_threads(1)).
"""
import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_common import DEFAULT_BINARY, ROOT, Server, connect, predict  # noqa: E402

DISPLAY = 1024
SIZES = {"12 MP JPEG": (4000, 3000, "jpg"), "27 MP JPEG": (6000, 4500, "jpg"), "50 MP JPEG": (8160, 6120, "jpg"),
         "12 MP PNG": (4000, 3000, "png"), "12 MP WebP": (4000, 3000, "webp")}
TARGETS = {"jpeg12_server_ms": 60, "answer_kb": 400, "peak_rss_one_mb": 96, "peak_rss_clients_mb": 128}


def make_photos(folder, sources, per_kind):
    """per_kind photos of each kind, each from a different lesion image, enlarged (bicubic)."""
    out = {}
    for kind, (w, h, ext) in SIZES.items():
        out[kind] = []
        for i, src in enumerate(sources[:per_kind]):
            path = Path(folder) / f"{kind.replace(' ', '_')}_{i}.{ext}"
            im = Image.open(src).convert("RGB").resize((w, h), Image.BICUBIC)
            if ext == "jpg":
                im.save(path, quality=92)
            elif ext == "webp":
                im.save(path, quality=90)
            else:
                im.save(path, compress_level=6)
            out[kind].append(path.read_bytes())
    return out


def dermal_side(binary, photos, iters):
    rows = {}
    with Server(binary, env={"THREADS": "1", "LOG_LEVEL": "warn"}) as server:
        server.wait_listening()
        conn = connect(server.port, timeout=120)
        for kind, files in photos.items():
            stages, sizes, overlay = {}, [], []
            for data in files:
                predict(conn, data)  # warm for this size
                for _ in range(iters):
                    status, _, _, body = predict(conn, data)
                    if status != 200:
                        raise SystemExit(f"{kind}: status {status}: {body[:300]}")
                    j = json.loads(body)
                    for k, v in j["timings_ms"].items():
                        stages.setdefault(k, []).append(v)
                    sizes.append(len(body))
                    overlay.append((j["gradcam"]["width"], j["gradcam"]["height"], j["image"]["decoded"]["width"],
                                    j["image"]["decoded"]["height"]))
            rows[kind] = {"stages_ms": {k: statistics.median(v) for k, v in stages.items()},
                          "answer_kb": statistics.median(sizes) / 1000, "overlay": overlay[0][:2],
                          "decoded": overlay[0][2:], "file_kb": statistics.median(len(d) for d in files) / 1000}
        conn.close()
        rows["peak_rss_mb"] = server.memory_mb()[1]
    return rows


def clients_side(binary, photos, clients, seconds):
    """A fresh server, `clients` connections each sending the photos in turn for `seconds`."""
    with Server(binary, env={"THREADS": "1", "LOG_LEVEL": "warn", "MAX_QUEUE": str(clients + 2)}) as server:
        server.wait_listening()
        idle = server.memory_mb()[0]
        done, errors = [0], []
        stop = time.monotonic() + seconds

        def client(k):
            conn = connect(server.port, timeout=300)
            i = k
            while time.monotonic() < stop:
                status, _, _, body = predict(conn, photos[i % len(photos)])
                i += 1
                if status == 200:
                    done[0] += 1
                else:
                    errors.append((status, body[:200]))
            conn.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"idle_rss_mb": idle, "peak_rss_mb": server.memory_mb()[1], "answers": done[0], "errors": errors[:5]}


class PythonPeer:
    """The seed app's stack on the same model: PIL (draft), PyTorch eager, autograd Grad-CAM."""

    def __init__(self, model_path):
        import onnx
        import torch
        sys.path.insert(0, str(ROOT / "tools" / "reference"))
        import onnx_torch
        torch.set_num_threads(1)
        self.torch = torch
        model = onnx.load(model_path)
        self.net = onnx_torch.Interpreter(model, dtype=torch.float32)
        gap = next(n for n in model.graph.node if n.op_type == "GlobalAveragePool")
        self.layer, self.logits = gap.input[0], model.graph.output[0].name
        self.input = model.graph.input[0].name
        card = json.load(open(os.path.splitext(model_path)[0] + ".json"))
        p = card["preprocess"]
        self.size = (card["input"]["width"], card["input"]["height"])
        self.scale, self.mean, self.std = p["scale"], np.array(p["mean"], np.float32), np.array(p["std"], np.float32)

    def run(self, data):
        torch, F = self.torch, self.torch.nn.functional
        t = {}
        s = time.perf_counter()
        img = Image.open(io.BytesIO(data))
        img.draft("RGB", (DISPLAY, DISPLAY))  # JPEG: the largest 1/2^k reduction still >= 1024 a side
        img = img.convert("RGB")
        if max(img.size) > DISPLAY:
            k = DISPLAY / max(img.size)
            display = img.resize((round(img.width * k), round(img.height * k)), Image.BILINEAR)
        else:
            display = img
        t["decode"] = time.perf_counter() - s
        s = time.perf_counter()
        x = np.asarray(img.resize(self.size, Image.BILINEAR), np.float32) * self.scale
        x = torch.from_numpy(((x - self.mean) / self.std).transpose(2, 0, 1)[None].copy())
        t["preprocess"] = time.perf_counter() - s
        s = time.perf_counter()
        out = self.net.run({self.input: x}, keep=[self.layer])
        y, act = out[self.logits], out[self.layer]
        (grad,) = torch.autograd.grad(y[0, int(y[0].argmax())], [act])
        cam = F.relu((grad.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True)).detach()
        t["infer + gradcam"] = time.perf_counter() - s
        s = time.perf_counter()
        cam = F.interpolate(cam, size=(display.height, display.width), mode="bilinear", align_corners=False)[0, 0].numpy()
        cam = (cam - cam.min()) / max(cam.max() - cam.min(), 1e-12)
        r = np.clip(np.minimum(4 * cam - 1.5, -4 * cam + 4.5), 0, 1)
        g = np.clip(np.minimum(4 * cam - 0.5, -4 * cam + 3.5), 0, 1)
        b = np.clip(np.minimum(4 * cam + 0.5, -4 * cam + 2.5), 0, 1)
        heat = np.stack([r, g, b], -1) * 255
        blended = (0.6 * np.asarray(display, np.float32) + 0.4 * heat).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(blended).save(buf, format="PNG")
        t["overlay + encode"] = time.perf_counter() - s
        return {k: v * 1000 for k, v in t.items()}, len(buf.getvalue())


def python_side(model, photos, iters):
    peer = PythonPeer(model)
    rows = {}
    for kind, files in photos.items():
        stages, sizes = {}, []
        for data in files:
            peer.run(data)
            for _ in range(iters):
                t, size = peer.run(data)
                for k, v in t.items():
                    stages.setdefault(k, []).append(v)
                stages.setdefault("total", []).append(sum(t.values()))
                sizes.append(size)
        rows[kind] = {"stages_ms": {k: statistics.median(v) for k, v in stages.items()},
                      "overlay_kb": statistics.median(sizes) / 1000}
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--model", default=str(ROOT / "models" / "skinnet_mnv2_ham_isic224.onnx"))
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--per-kind", type=int, default=3, help="photos of each kind (different lesions)")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    import csv
    meta = csv.DictReader(open(os.path.join(a.shared, "data/ham10000/metadata.csv")))
    test = [os.path.join(a.shared, "data/ham10000/images", r["image_id"] + ".jpg") for r in meta if r["split"] == "test"]
    sources = test[:: max(1, len(test) // a.per_kind)]
    with tempfile.TemporaryDirectory(prefix="dermal_phone_") as folder:
        photos = make_photos(folder, sources, a.per_kind)
        dermal = dermal_side(a.binary, photos, a.iters)
        clients = clients_side(a.binary, photos["27 MP JPEG"], a.clients, a.seconds)
    python = python_side(a.model, photos, a.iters)

    print(f"Phone photos, one thread, medians of {a.iters} x {a.per_kind} requests; load average {os.getloadavg()[0]:.1f}")
    print("| photo | file | decoded | Dermal server ms (decode / preprocess / infer + Grad-CAM + check / overlay + encode) "
          "| answer | Python peer ms (decode / preprocess / infer + Grad-CAM / overlay + encode) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for kind in SIZES:
        d, p = dermal[kind], python[kind]
        s = d["stages_ms"]
        rest = sum(v for k, v in s.items() if k not in ("decode", "preprocess", "display", "encode", "total", "queue"))
        ps = p["stages_ms"]
        print(f"| {kind} | {d['file_kb']:.0f} KB | {d['decoded'][0]}x{d['decoded'][1]} | **{s['total']:.1f}** "
              f"({s['decode']:.1f} / {s['preprocess']:.1f} / {rest:.1f} / {s.get('display', 0) + s['encode']:.1f}) "
              f"| {d['answer_kb']:.0f} KB | **{ps['total']:.1f}** ({ps['decode']:.1f} / {ps['preprocess']:.1f} / "
              f"{ps['infer + gradcam']:.1f} / {ps['overlay + encode']:.1f}) | {ps['total'] / s['total']:.1f}x |")
    print(f"Dermal peak RSS answering every photo one at a time: {dermal['peak_rss_mb']:.1f} MB")
    print(f"{a.clients} clients sending 27 MP JPEGs for {a.seconds:.0f} s: {clients['answers']} answers, "
          f"{len(clients['errors'])} errors, idle {clients['idle_rss_mb']:.1f} MB, peak RSS {clients['peak_rss_mb']:.1f} MB")
    checks = [("12 MP JPEG server-side", dermal["12 MP JPEG"]["stages_ms"]["total"], TARGETS["jpeg12_server_ms"]),
              ("largest answer (KB)", max(dermal[k]["answer_kb"] for k in SIZES), TARGETS["answer_kb"]),
              ("peak RSS, one at a time (MB)", dermal["peak_rss_mb"], TARGETS["peak_rss_one_mb"]),
              (f"peak RSS, {a.clients} clients (MB)", clients["peak_rss_mb"], TARGETS["peak_rss_clients_mb"])]
    for name, value, target in checks:
        print(f"  {name}: {value:.1f} (target <= {target}) {'ok' if value <= target else 'MISS'}")
    if a.json:
        json.dump({"dermal": dermal, "python": python, "clients": clients}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
