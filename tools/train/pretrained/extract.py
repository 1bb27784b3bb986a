#!/usr/bin/python3
"""Cache MobileNetV2 (nsfwjs) intermediate maps -- by default the output of block_10, 96 x 14 x 14,
float16, the last stage nsfwjs kept frozen at its ImageNet weights -- for the train and val images of
HAM10000 and the ISIC 2017 split (never the test images), so that the stages after it and a new
head can be trained on a CPU without re-running the stem (most of the network's time) every epoch.

    /usr/bin/python3 extract.py WEIGHTS.pt OUT_DIR --view 0     # clean, train + val
    /usr/bin/python3 extract.py WEIGHTS.pt OUT_DIR --view 1     # augmented, train only
    (--cut 14: block_12's output, as the first runs in NOTES.md; --threads N)

View 0 is Dermal's preprocessing (PIL bilinear, stretched to 224x224, /255). Views >= 1 are
random augmentations of the train images (seeded by the view number): the geometric and
photometric differences between cameras and clinics (rotations/flips, zoom out onto reflected or
skin-coloured borders, off-centre, zoom in, colour casts, exposure, contrast, saturation, gamma,
blur, JPEG re-encoding). Writes OUT_DIR/view{N}.npz: maps [n, 96, 14, 14] float16, labels,
is_isic, split (0 train, 1 val), ids.
"""

import argparse
import csv
import io
import os
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mobilenet_v2 import MobileNetV2  # noqa: E402

SHARED = os.environ.get("DERMAL_SHARED_DIR", os.path.join(HERE, "..", "..", "..", "..", "shared"))
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
# features[:SPLIT_AT] is cached, features[SPLIT_AT:] trained. 12 = Conv1, expanded_conv, block_1..block_10:
# nsfwjs retrained block_11 onwards for its own task, so the stages before are ImageNet's.
SPLIT_AT = 12


def items(splits):
    """(path, label, is_isic, split index, id) for HAM10000 and ISIC 2017 images in `splits`."""
    out = []
    ham = os.path.join(SHARED, "data", "ham10000")
    for r in csv.DictReader(open(os.path.join(ham, "metadata.csv"))):
        if r["split"] in splits:
            out.append((os.path.join(ham, "images", r["image_id"] + ".jpg"), CLASSES.index(r["dx"]), False,
                        ["train", "val"].index(r["split"]), r["image_id"]))
    isic = os.path.join(SHARED, "data", "isic2017", "images")
    for r in csv.DictReader(open(os.path.join(HERE, "..", "isic2017_split.csv"))):
        if r["split"] in splits:
            out.append((os.path.join(isic, r["image_id"] + ".jpg"), CLASSES.index(r["dx"]), True,
                        ["train", "val"].index(r["split"]), r["image_id"]))
    return out


def skin_colour(a, frame=10):
    mask = np.ones(a.shape[:2], bool)
    mask[frame:-frame, frame:-frame] = False
    return np.median(a[mask], axis=0)


def augment(img, rng, size=224):
    a = np.asarray(img, dtype=np.float32)
    # geometry: dihedral group (dermoscopy has no up), then a scale change
    k = rng.integers(4)
    a = np.rot90(a, k)
    if rng.random() < 0.5:
        a = a[:, ::-1]
    h, w = a.shape[:2]
    r = rng.random()
    if r < 0.4:  # zoom out: lesion at s of the frame on reflected or skin-coloured surround
        s = rng.uniform(0.45, 0.85)
        sh, sw = max(8, int(round(h * s))), max(8, int(round(w * s)))
        small = np.asarray(Image.fromarray(np.uint8(np.clip(a, 0, 255))).resize((sw, sh), Image.BILINEAR),
                           np.float32)
        top = int(rng.integers(0, h - sh + 1)) if rng.random() < 0.5 else (h - sh) // 2
        left = int(rng.integers(0, w - sw + 1)) if rng.random() < 0.5 else (w - sw) // 2
        if rng.random() < 0.5:
            pads = ((top, h - sh - top), (left, w - sw - left), (0, 0))
            out = small
            while any(p for pp in pads[:2] for p in pp):  # reflect, repeated while pads exceed the size
                hh, ww = out.shape[:2]
                t, b = min(pads[0][0], hh - 1), min(pads[0][1], hh - 1)
                lft, rgt = min(pads[1][0], ww - 1), min(pads[1][1], ww - 1)
                out = np.pad(out, ((t, b), (lft, rgt), (0, 0)), mode="reflect")
                pads = ((pads[0][0] - t, pads[0][1] - b), (pads[1][0] - lft, pads[1][1] - rgt), (0, 0))
            a = out
        else:
            canvas = np.empty_like(a)
            canvas[:] = skin_colour(a)
            canvas[top:top + sh, left:left + sw] = small
            a = canvas
    elif r < 0.7:  # zoom in / aspect jitter
        s = rng.uniform(0.6, 1.0)
        ar = np.exp(rng.uniform(-0.2, 0.2))
        ch, cw = int(min(h, h * s * ar)), int(min(w, w * s / ar))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        a = a[y0:y0 + ch, x0:x0 + cw]
    # photometric
    if rng.random() < 0.6:
        a = a * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    if rng.random() < 0.5:
        a = a * rng.uniform(0.65, 1.2)
    if rng.random() < 0.4:
        m = a.mean()
        a = (a - m) * rng.uniform(0.75, 1.25) + m
    if rng.random() < 0.3:
        g = a.mean(2, keepdims=True)
        a = (a - g) * rng.uniform(0.7, 1.3) + g
    if rng.random() < 0.3:
        a = 255.0 * (np.clip(a, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
    im = Image.fromarray(np.uint8(np.clip(np.rint(a), 0, 255)))
    if rng.random() < 0.25:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.8)))
    if rng.random() < 0.25:
        b = io.BytesIO()
        im.save(b, "JPEG", quality=int(rng.integers(30, 75)))
        im = Image.open(io.BytesIO(b.getvalue())).convert("RGB")
    return im.resize((size, size), Image.BILINEAR)


def image_batch(paths, rng=None, size=224):
    """Images as one float batch in [0, 1], NCHW shape with NHWC (channels-last) memory: Dermal's
    preprocessing (PIL bilinear, stretched) when rng is None, else one augment() draw each."""
    batch = []
    for path in paths:
        img = Image.open(path).convert("RGB")
        img = img.resize((size, size), Image.BILINEAR) if rng is None else augment(img, rng, size)
        batch.append(np.asarray(img, np.float32) / 255.0)
    return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)


def fused_stem(weights, split_at=SPLIT_AT):
    """features[:split_at] with every BatchNormalization folded into its convolution (inference only)."""
    model = MobileNetV2(nsfw_head=True)
    model.load_state_dict(torch.load(weights, map_location="cpu")["state_dict"])
    model.eval()
    stem = model.features[:split_at]
    for mod in stem.modules():
        if isinstance(mod, torch.nn.Sequential):
            kids = list(mod)
            for i in range(len(kids) - 1):
                if isinstance(kids[i], torch.nn.Conv2d) and isinstance(kids[i + 1], torch.nn.BatchNorm2d):
                    conv, bn = kids[i], kids[i + 1]
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    fused = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                            conv.padding, groups=conv.groups, bias=True)
                    with torch.no_grad():
                        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                        fused.bias.copy_(bn.bias - bn.running_mean * scale)
                    mod[i], mod[i + 1] = fused, torch.nn.Identity()
                elif isinstance(kids[i], torch.nn.ReLU6):
                    kids[i].inplace = True
    return stem.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("out")
    ap.add_argument("--view", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--cut", type=int, default=SPLIT_AT, help="stages cached (12: block_10, 14: block_12)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    its = items({"train", "val"} if args.view == 0 else {"train"})
    if args.limit:
        its = its[:args.limit]
    stem = fused_stem(args.weights, args.cut).to(memory_format=torch.channels_last)  # 2x faster on CPU
    rng = np.random.default_rng(1000 + args.view)
    with torch.no_grad():
        shape = stem(torch.zeros(1, 3, 224, 224)).shape[1:]
    maps = np.zeros((len(its),) + tuple(shape), np.float16)
    t0 = time.time()
    with torch.no_grad():
        for s in range(0, len(its), args.batch):
            paths = [it[0] for it in its[s:s + args.batch]]
            x = image_batch(paths, None if args.view == 0 else rng)
            maps[s:s + len(paths)] = stem(x).contiguous().numpy().astype(np.float16)
            if (s // args.batch) % 20 == 0:
                el = time.time() - t0
                print("view %d: %d/%d images, %.0f s, %.1f ms/image" % (args.view, s + len(paths), len(its), el,
                                                                        1e3 * el / (s + len(paths))), flush=True)
    np.savez(os.path.join(args.out, "view%d.npz" % args.view), maps=maps,
             labels=np.array([i[1] for i in its], np.int64), is_isic=np.array([i[2] for i in its]),
             split=np.array([i[3] for i in its], np.int64), ids=np.array([i[4] for i in its]),
             split_at=np.int64(args.cut))
    print("view %d: %d images in %.0f s" % (args.view, len(its), time.time() - t0))


if __name__ == "__main__":
    main()
