#!/usr/bin/python3
"""Robustness of a model's balanced accuracy to how other sources' images look.

Transforms the HAM10000 test split (988 images, 200x150) the way images from other cameras and
clinics differ -- lesion at half size with skin-coloured or reflected borders, or off centre,
colour casts, darker exposure, JPEG quality 50, blur -- and runs `dermal eval` on each transformed
copy. The target: balanced accuracy drops by at most 5 points from the clean figure.

    /usr/bin/python3 tools/train/robustness.py --model models/X.onnx [--model models/Y.onnx ...] \
        [--dermal build/dermal] [--shared ../shared] [--limit N] [--threads 1] [--json FILE]

Prints a markdown table (one row per transform; per model: balanced accuracy %, drop vs clean in
points, melanoma recall %, accuracy %), then which transforms miss the target. Every transform
keeps the 200x150 size and is saved as lossless PNG, except jpeg50 (JPEG quality 50).
Transforms and models run one after another; progress goes to stderr.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageFilter

TARGET_DROP = 5.0  # points of balanced accuracy


def _arr(img):
    return np.asarray(img.convert("RGB"), dtype=np.float32)


def _img(a):
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGB")


def _half(img):
    return img.resize((img.width // 2, img.height // 2), Image.BILINEAR)


def _skin(img, frame=10):
    """Median colour of the image's outer `frame`-pixel border (the surrounding skin)."""
    a = np.asarray(img.convert("RGB"))
    mask = np.ones(a.shape[:2], bool)
    mask[frame:-frame, frame:-frame] = False
    return tuple(int(v) for v in np.median(a[mask], axis=0))


def _on_skin(img, centred):
    """Half-size image on a canvas of the original size filled with the skin colour: centred,
    or with its top-left corner at 10% of the width and height."""
    small = _half(img)
    canvas = Image.new("RGB", img.size, _skin(img))
    if centred:
        at = ((img.width - small.width) // 2, (img.height - small.height) // 2)
    else:
        at = (round(0.1 * img.width), round(0.1 * img.height))
    canvas.paste(small, at)
    return canvas


def _reflect_pad(a, top, bottom, left, right):
    """numpy reflect padding, repeated while a pad is larger than the current size allows."""
    while top or bottom or left or right:
        h, w = a.shape[:2]
        t, b, l, r = min(top, h - 1), min(bottom, h - 1), min(left, w - 1), min(right, w - 1)
        a = np.pad(a, ((t, b), (l, r), (0, 0)), mode="reflect")
        top, bottom, left, right = top - t, bottom - b, left - l, right - r
    return a


def clean(img):
    """The original pixels, unchanged (saved as lossless PNG)."""
    return img


def half_size_skin(img):
    """Lesion at half width and height, centred on the median colour of the image's 10-px border."""
    return _on_skin(img, centred=True)


def half_size_reflect(img):
    """Lesion at half width and height, centred, the surround filled by mirror reflection."""
    small = _arr(_half(img))
    dh, dw = img.height - small.shape[0], img.width - small.shape[1]
    return _img(_reflect_pad(small, dh // 2, dh - dh // 2, dw // 2, dw - dw // 2))


def off_centre_half(img):
    """Half size, top-left corner at 10% of the width/height, on the skin colour (not centred)."""
    return _on_skin(img, centred=False)


def cast_warm(img):
    """Warm (tungsten) cast: R x1.15, B x0.85."""
    return _img(_arr(img) * np.array([1.15, 1.0, 0.85], np.float32))


def cast_cool(img):
    """Cool (daylight/flash) cast: R x0.85, B x1.15."""
    return _img(_arr(img) * np.array([0.85, 1.0, 1.15], np.float32))


def cast_green(img):
    """Green (fluorescent/LED) cast: G x1.12."""
    return _img(_arr(img) * np.array([1.0, 1.12, 1.0], np.float32))


def darker(img):
    """Under-exposed: every channel x0.7."""
    return _img(_arr(img) * 0.7)


def jpeg50(img):
    """JPEG quality 50 re-encode (the saving does it; the pixels pass through unchanged here)."""
    return img


def blur(img):
    """Soft focus: Gaussian blur, radius 1.5 px."""
    return img.filter(ImageFilter.GaussianBlur(1.5))


TRANSFORMS = [clean, half_size_skin, half_size_reflect, off_centre_half,
              cast_warm, cast_cool, cast_green, darker, jpeg50, blur]


def test_rows(shared, limit):
    with open(os.path.join(shared, "data/ham10000/metadata.csv"), newline="") as f:
        rows = [(r["image_id"], r["dx"]) for r in csv.DictReader(f) if r["split"] == "test"]
    return rows[:limit] if limit else rows


def write_set(transform, rows, src_dir, out_dir):
    """Write the transformed images and labels.csv into out_dir; return the labels path."""
    for image_id, _ in rows:
        with Image.open(os.path.join(src_dir, image_id + ".jpg")) as im:
            img = im.convert("RGB")
        out = transform(img)
        assert out.size == img.size, (transform.__name__, out.size, img.size)
        if transform is jpeg50:
            out.save(os.path.join(out_dir, image_id + ".jpg"), "JPEG", quality=50)
        else:
            out.save(os.path.join(out_dir, image_id + ".png"))
    labels = os.path.join(out_dir, "labels.csv")
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "dx"])
        w.writerows(rows)
    return labels


def run_eval(dermal, model, images, labels, threads, expected):
    model, _, card = model.partition("=")  # MODEL=CARD: a card that is not beside the model
    cmd = [dermal, "eval", "--model", model, "--images", images, "--labels", labels,
           "--threads", str(threads), "--json", "--bootstrap", "0"] + (["--card", card] if card else [])
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"robustness: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    r = json.loads(p.stdout)
    if r["failed"] != 0 or r["images"] != expected:
        sys.exit(f"robustness: {model} on {images}: {r['failed']} failed, {r['images']}/{expected} images")
    return r


def summary(r):
    mel = r["per_class"].get("mel", {}).get("recall")
    return {"balanced_accuracy": 100 * r["balanced_accuracy"], "accuracy": 100 * r["accuracy"],
            "mel_recall": None if mel is None else 100 * mel, "ece": r["ece"], "images": r["images"]}


def fmt(v, signed=False):
    return "-" if v is None else (f"{v:+.1f}" if signed else f"{v:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True,
                    help="ONNX model, or MODEL=CARD for a card not beside it (repeatable)")
    ap.add_argument("--dermal", default="build/dermal")
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--limit", type=int, default=0, help="only the first N test images")
    ap.add_argument("--threads", type=int, default=1, help="dermal compute threads")
    ap.add_argument("--json", help="write all numbers here")
    a = ap.parse_args()

    rows = test_rows(a.shared, a.limit)
    src = os.path.join(a.shared, "data/ham10000/images")
    names = [os.path.splitext(os.path.basename(m.partition("=")[0]))[0] for m in a.model]
    res = {n: {} for n in names}
    t0 = time.time()
    for t in TRANSFORMS:
        with tempfile.TemporaryDirectory(prefix=f"robust_{t.__name__}_") as d:
            print(f"[{time.time() - t0:6.0f}s] {t.__name__}: writing {len(rows)} images", file=sys.stderr)
            labels = write_set(t, rows, src, d)
            for name, model in zip(names, a.model):
                r = summary(run_eval(a.dermal, model, d, labels, a.threads, len(rows)))
                res[name][t.__name__] = r
                print(f"[{time.time() - t0:6.0f}s]   {name}: balanced accuracy {r['balanced_accuracy']:.1f}%",
                      file=sys.stderr)

    for n in names:
        base = res[n]["clean"]["balanced_accuracy"]
        for r in res[n].values():
            r["drop"] = r["balanced_accuracy"] - base

    print(f"Robustness on the HAM10000 test split ({len(rows)} images): balanced accuracy %, "
          "drop vs clean (points), melanoma recall %, accuracy %\n")
    head = "| transform | " + " | ".join(f"{n} bal. acc | drop | mel recall | acc" for n in names) + " |"
    print(head)
    print("|" + "---|" * (1 + 4 * len(names)))
    for t in TRANSFORMS:
        cells = []
        for n in names:
            r = res[n][t.__name__]
            cells += [fmt(r["balanced_accuracy"]), fmt(r["drop"], True), fmt(r["mel_recall"]), fmt(r["accuracy"])]
        print(f"| {t.__name__} | " + " | ".join(cells) + " |")
    worst = {n: min(res[n].values(), key=lambda r: r["drop"])["drop"] for n in names}
    print("| worst drop | " + " | ".join(f"| {fmt(worst[n], True)} | |" for n in names) + " |")
    print(f"\nTarget: balanced accuracy drops by at most {TARGET_DROP:g} points from clean.")
    misses = {n: [t for t, r in res[n].items() if r["drop"] < -TARGET_DROP] for n in names}
    for n in names:
        print(f"- {n}: " + (f"misses on {', '.join(misses[n])}" if misses[n] else "meets it on every transform"))

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"images": len(rows), "target_drop_points": TARGET_DROP, "models": dict(zip(names, a.model)),
                       "results": res, "worst_drop": worst, "misses": misses}, f, indent=2)
    print(f"robustness: done in {time.time() - t0:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
