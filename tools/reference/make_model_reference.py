#!/usr/bin/python3
"""Compute the PyTorch reference outputs that Dermal's C++ model tests compare against.

    /usr/bin/python3 tools/reference/make_model_reference.py --shared ../shared --out build/ref \
        [--images 50] [--grad-images 4]

For each model in SHARED/models (default: mobilenet_v2_ham192, resnet18_ham192) it runs the ONNX
graph with onnx_torch.py (torch.nn.functional + autograd, float64) on the first N test images of
SHARED/data/ham10000, preprocessed as SHARED/models/README.md says, and writes to OUT:

  inputs.f32                       [N,3,192,192]  the preprocessed batch (shared by all models)
  <model>.logits.f32               [N,7]          logits
  <model>.<role>.activation.f32    [K,C,H,W]      activations of the chosen tensor
  <model>.<role>.gradient.f32      [K,7,C,H,W]    d logit[class] / d activation, every class
  <model>.<role>.cam.<method>.f32  [M,H,W]        raw class activation maps (cam_methods.py) for
                                                  the top class of the first M images (M = 20)
  manifest.json                    what is where (paths relative to OUT), plus a source hash

Roles: "last" is the input of the final GlobalAveragePool (the Grad-CAM layer); "early" is the
last residual-block output at twice that resolution. Both are found by walking the graph.
All .f32 files are raw little-endian float32, C order. Values are computed in float64 (float32
weights and input cast up) and rounded to float32 once, at the end. The maps: the gradient
methods and Eigen-CAM from the float64 activations and autograd gradients of the top class's
logit; Score-CAM (its masked forwards run in float32) for the first S images at "last" only.

When OUT/manifest.json was made from the same scripts, arguments, models and images (a SHA-256
over all of them is stored in it) and its files are all there, nothing is recomputed.
"""

import argparse
import csv
import hashlib
import json
import os
import sys
import time

# Idle OpenMP threads must sleep, not spin: on a shared, busy machine spinning makes torch's
# many small parallel regions (float64 depthwise Conv) 20-100x slower. Read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import onnx_torch  # noqa: E402

import cam_methods  # noqa: E402

SCRIPTS = [os.path.join(HERE, name)
           for name in ("make_model_reference.py", "onnx_torch.py", "cam_methods.py")]
DEFAULT_MODELS = ["mobilenet_v2_ham192", "resnet18_ham192"]
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
SIZE = 192
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FLOAT32_TOLERANCE = 1e-4  # max |float32 run - float64 run| allowed on the logits
CHUNK = 10                # images per forward pass (bounds memory)
SCORE_CAM_BATCH = 32      # masked images per forward pass (Score-CAM)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shared", required=True, help="the shared dir (models/, data/ham10000/)")
    p.add_argument("--out", required=True, help="output dir (created if missing)")
    p.add_argument("--images", type=int, default=50, help="test images for logits (N)")
    p.add_argument("--grad-images", type=int, default=4,
                   help="of those, how many get activations and gradients (K)")
    p.add_argument("--cam-images", type=int, default=20,
                   help="of those, how many get class activation maps of their top class (M)")
    p.add_argument("--score-cam-images", type=int, default=1,
                   help="of the M, how many get a Score-CAM at the last layer (S; one masked "
                        "forward per channel)")
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS,
                   help="model names (SHARED/models/<name>.onnx)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="torch CPU threads")
    p.add_argument("--force", action="store_true", help="recompute even if up to date")
    a = p.parse_args()
    if a.images < 1 or not 0 <= a.grad_images <= a.images:
        p.error("need --images >= 1 and 0 <= --grad-images <= --images")
    if not 0 <= a.score_cam_images <= a.cam_images <= a.images:
        p.error("need 0 <= --score-cam-images <= --cam-images <= --images")
    return a


# --------------------------------------------------------------------------------------------
# Data

def test_images(ham_dir, n):
    """First n rows of metadata.csv with split == test, in file order: [(image_id, label)]."""
    rows = []
    with open(os.path.join(ham_dir, "metadata.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] == "test":
                rows.append((row["image_id"], CLASSES.index(row["dx"])))
                if len(rows) == n:
                    break
    if len(rows) < n:
        raise SystemExit("only %d test images in metadata.csv, %d asked" % (len(rows), n))
    return rows


def preprocess(path):
    """models/README.md: RGB (EXIF-oriented), bilinear (antialiased) resize to 192x192, /255,
    ImageNet mean/std, CHW float32."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        im = im.resize((SIZE, SIZE), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def source_hash(args, shared, model_paths, image_paths):
    h = hashlib.sha256()
    for path in SCRIPTS + model_paths + [os.path.join(shared, "data/ham10000/metadata.csv")] \
            + image_paths:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    h.update(json.dumps({"shared": shared, "images": args.images, "grad_images": args.grad_images,
                         "cam_images": args.cam_images, "score_cam_images": args.score_cam_images,
                         "models": args.models}, sort_keys=True).encode())
    return h.hexdigest()


def up_to_date(out, digest):
    try:
        with open(os.path.join(out, "manifest.json")) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return False
    if m.get("source_hash") != digest:
        return False
    entries = [m["inputs"]]
    for model in m["models"]:
        entries.append(model["logits"])
        for layer in model["layers"]:
            entries += [layer[key] for key in ("activation", "gradient") if key in layer]
            entries += [e for e in layer.get("cams", {}).values() if isinstance(e, dict)]
    for e in entries:
        path = os.path.join(out, e["file"])
        if not os.path.isfile(path) or os.path.getsize(path) != 4 * int(np.prod(e["shape"])):
            return False
    return True


def save_f32(out, name, array):
    a = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    a.tofile(os.path.join(out, name))
    return {"file": name, "shape": list(a.shape)}


# --------------------------------------------------------------------------------------------
# Choosing the two tensors by walking the graph

def choose_layers(model, shapes):
    """-> {"last": (name, op), "early": (name, op)} using node op types and output shapes
    (shapes: tensor name -> full shape, from one traced run)."""
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    gaps = [n for n in nodes if n.op_type == "GlobalAveragePool"]
    if not gaps:
        raise SystemExit("no GlobalAveragePool in the graph: cannot find the Grad-CAM layer")
    last = gaps[-1].input[0]
    if producer[last].op_type not in ("Relu", "Clip"):
        raise SystemExit("the GlobalAveragePool input %s comes from %s, not Relu/Clip"
                         % (last, producer[last].op_type))
    _, _, h, w = shapes[last]

    def is_block_output(n):  # a residual Add, or an activation applied right to one
        if n.op_type == "Add":
            return True
        return (n.op_type in ("Relu", "Clip") and n.input[0] in producer
                and producer[n.input[0]].op_type == "Add")

    candidates = [n for n in nodes[:nodes.index(producer[last])]
                  if len(shapes.get(n.output[0], ())) == 4
                  and tuple(shapes[n.output[0]][2:]) == (2 * h, 2 * w) and is_block_output(n)]
    if not candidates:
        raise SystemExit("no residual-block output at %dx%d before %s" % (2 * h, 2 * w, last))
    early = candidates[-1]
    return {"last": (last, producer[last].op_type), "early": (early.output[0], early.op_type)}


# --------------------------------------------------------------------------------------------

def forward_logits(net, inputs, name_in, name_out):
    with torch.no_grad():
        return [net.run({name_in: inputs[s:s + CHUNK]})[name_out]
                for s in range(0, len(inputs), CHUNK)]


def class_activation_maps(out, prefix, acts, grads, classes, net32, inputs, score_images):
    """The raw maps of every method for images [0, M): acts, grads [M, C, H, W] float64 (grads
    of each image's top-class logit). Score-CAM for the first score_images when net32 is given.
    -> the manifest's "cams" entry."""
    cams = {"images": len(classes), "classes": classes}

    def save(method, maps):
        file = "%s.cam.%s.f32" % (prefix, method.replace("+", "p"))
        return save_f32(out, file, np.stack(maps))

    for method, fn in cam_methods.GRADIENT_METHODS.items():
        cams[method] = save(method, [fn(a, g) for a, g in zip(acts, grads)])
    cams["eigencam"] = save("eigencam", [cam_methods.eigen_cam(a) for a in acts])
    if net32 is not None and score_images > 0:
        name_in, name_out = net32.input_names[0], net32.output_names[0]

        def probabilities(batch):
            x = torch.from_numpy(batch).float().contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                return torch.softmax(net32.run({name_in: x})[name_out].double(), dim=1).numpy()

        maps, weights = [], []
        for i in range(score_images):
            cam, w = cam_methods.score_cam(probabilities, inputs[i].double().numpy(), acts[i],
                                           classes[i], SCORE_CAM_BATCH)
            maps.append(cam)
            weights.append(w)
        cams["scorecam"] = dict(save("scorecam", maps), images=score_images)
        cams["scorecam_weights"] = save("scorecam_weights", weights)
    return cams


def channels_last(net):
    """Store the 4-D weights channels-last: float32 convolutions run about 1.5x faster, which
    matters for Score-CAM's thousand masked forwards. The values are unchanged."""
    for key, t in net.initializers.items():
        if t.dim() == 4:
            net.initializers[key] = t.contiguous(memory_format=torch.channels_last)


def process_model(args, out, name, path, inputs, labels):
    t0 = time.time()
    model = onnx.load(path)
    net64 = onnx_torch.Interpreter(model, torch.float64)
    net32 = onnx_torch.Interpreter(model, torch.float32)
    if len(net64.input_names) != 1 or len(net64.output_names) != 1:
        raise SystemExit("%s: expected one input and one output" % name)
    name_in, name_out = net64.input_names[0], net64.output_names[0]

    # Shapes of every tensor, from one image, to pick the layers.
    with torch.no_grad():
        traced = net32.run({name_in: inputs[:1]}, keep_all=True)
    shapes = {k: tuple(v.shape) for k, v in traced.items()}
    del traced
    chosen = choose_layers(model, shapes)

    # Float64: the first max(K, M) images with autograd on (their logits are reused), the rest
    # without. Images are independent (no batch statistics), so the gradient of a batch sum is
    # each image's own gradient.
    k, m = args.grad_images, args.cam_images
    roles = ["last", "early"]
    keep = [chosen[r][0] for r in roles]
    head, acts, grads, top_grads = [], [[], []], [[], []], [[], []]
    for s in range(0, max(k, m), CHUNK):
        e = min(s + CHUNK, max(k, m))
        res = net64.run({name_in: inputs[s:e]}, keep=keep)
        logits, act = res[name_out], [res[t] for t in keep]
        head.append(logits.detach())
        for j in range(len(roles)):
            acts[j].append(act[j].detach())
        rows = min(k, e) - s  # rows of this chunk that get every class's gradient
        if rows > 0:
            per_class = [[], []]
            for c in range(len(CLASSES)):
                g = torch.autograd.grad(logits[:rows, c].sum(), act, retain_graph=True)
                for j in range(len(roles)):
                    per_class[j].append(g[j][:rows].detach())
            for j in range(len(roles)):
                grads[j].append(torch.stack(per_class[j], dim=1))
        rows = min(m, e) - s  # rows that get maps: d logit[top class] / d activation
        if rows > 0:
            top = logits[:rows].detach().argmax(1, keepdim=True)
            g = torch.autograd.grad(logits[:rows].gather(1, top).sum(), act)
            for j in range(len(roles)):
                top_grads[j].append(g[j][:rows].detach())
        del res, logits, act
    logits64 = torch.cat(head + forward_logits(net64, inputs[max(k, m):], name_in, name_out))
    logits32 = torch.cat(forward_logits(net32, inputs, name_in, name_out))
    diff = (logits32.double() - logits64).abs().max().item()
    if diff > FLOAT32_TOLERANCE:
        raise SystemExit("%s: float32 and float64 logits differ by %.3g > %g"
                         % (name, diff, FLOAT32_TOLERANCE))
    accuracy = (logits64.argmax(1).numpy() == np.array(labels)).mean()
    channels_last(net32)

    entry = {"name": name, "file": path, "input": name_in, "output": name_out,
             "logits": save_f32(out, name + ".logits.f32", logits64.numpy()),
             "accuracy": float(accuracy), "float32_max_abs_diff": diff, "layers": []}
    for j, role in enumerate(roles):
        tensor, op = chosen[role]
        layer = {"role": role, "tensor": tensor, "op": op, "shape": list(shapes[tensor][1:]),
                 "grad_images": k}
        if k > 0:
            layer["activation"] = save_f32(out, "%s.%s.activation.f32" % (name, role),
                                           torch.cat(acts[j])[:k].numpy())
            layer["gradient"] = save_f32(out, "%s.%s.gradient.f32" % (name, role),
                                         torch.cat(grads[j]).numpy())
        if m > 0:
            act = torch.cat(acts[j])[:m].numpy()
            scores = net32 if role == "last" and args.score_cam_images > 0 else None
            layer["cams"] = class_activation_maps(out, "%s.%s" % (name, role), act,
                                                  torch.cat(top_grads[j]).numpy(),
                                                  logits64[:m].argmax(1).tolist(), scores,
                                                  inputs, args.score_cam_images)
        entry["layers"].append(layer)
    entry["seconds"] = round(time.time() - t0, 2)
    return entry


def main():
    args = parse_args()
    t0 = time.time()
    shared, out = os.path.abspath(args.shared), os.path.abspath(args.out)
    ham = os.path.join(shared, "data", "ham10000")
    model_paths = [os.path.join(shared, "models", m + ".onnx") for m in args.models]
    rows = test_images(ham, args.images)
    image_paths = [os.path.join(ham, "images", i + ".jpg") for i, _ in rows]
    digest = source_hash(args, shared, model_paths, image_paths)
    if not args.force and up_to_date(out, digest):
        print("reference: %s is up to date (hash %s), nothing to do" % (out, digest[:12]))
        return

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out, exist_ok=True)
    stale = os.path.join(out, "manifest.json")
    if os.path.exists(stale):
        os.remove(stale)  # no manifest while files are being rewritten

    inputs = torch.from_numpy(np.stack([preprocess(p) for p in image_paths]))
    labels = [label for _, label in rows]
    manifest = {"images": [i for i, _ in rows], "labels": labels, "classes": CLASSES,
                "inputs": save_f32(out, "inputs.f32", inputs.numpy()),
                "format": "raw little-endian float32, C order; computed in float64",
                "source_hash": digest, "models": []}
    print("reference: %d test images (%d with gradients), %d threads -> %s"
          % (args.images, args.grad_images, args.threads, out))
    for name, path in zip(args.models, model_paths):
        e = process_model(args, out, name, path, inputs, labels)
        manifest["models"].append(e)
        print("  %-22s accuracy %.3f on %d images, max |f32 - f64| logit %.2e, %.1f s"
              % (name, e["accuracy"], args.images, e["float32_max_abs_diff"], e["seconds"]))
        for layer in e["layers"]:
            print("    %-5s %-9s %-14s %s" % (layer["role"], layer["op"],
                                             "x".join(map(str, layer["shape"])), layer["tensor"]))
        cams = e["layers"][0].get("cams")
        if cams:
            print("    maps of %d images (Score-CAM: %d)"
                  % (cams["images"], cams["scorecam"]["images"] if "scorecam" in cams else 0))
    tmp = os.path.join(out, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, os.path.join(out, "manifest.json"))
    print("reference: done in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
