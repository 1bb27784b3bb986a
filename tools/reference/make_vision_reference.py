#!/usr/bin/python3
"""Write the small PIL/PyTorch references that tests/vision compares Dermal's image code against.

    /usr/bin/python3 tools/reference/make_vision_reference.py --shared ../shared \
        --out tests/data/vision

The output is committed (about 200 KB). It shares no code with Dermal: PIL 9 decodes, resizes
and transposes, PyTorch interpolates. Files in OUT:

  manifest.json        for each HAM10000 image: its size and an FNV-1a 64-bit hash of PIL's
                       decoded RGB bytes (the C++ decoder must give the same bytes), and the list
                       of resize references below with their mode and size
  <id>.<mode>.<W>x<H>.png
                       Image.open(<id>.jpg).convert("RGB").resize((W, H), <mode>) for modes
                       BILINEAR ("bilinear"), BOX ("area"), NEAREST ("nearest"), saved as PNG
  synthetic.png        a 13x9 random RGB image (numpy seed 7), and its resizes
                       synthetic.<mode>.<W>x<H>.png, enlarging and shrinking
  floatmap.f32         a 7x5 random float map (raw little-endian float32, row-major)
  floatmap.<mode>.<W>x<H>.f32
                       PIL mode "F" resizes of it
  floatmap.torch_bilinear.<W>x<H>.f32
                       torch.nn.functional.interpolate(mode="bilinear", align_corners=False)
  orientation.json     for EXIF orientations 1..8: PIL's ImageOps.exif_transpose of a 3x2 image
                       whose pixel i has value (i, 0, 0): the output size and pixel ids
  exif6.jpg, exif6.pil.png
                       a 40x24 JPEG written by PIL with EXIF orientation 6, and what PIL makes of
                       it (decode + exif_transpose)
"""

import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

MODES = {"bilinear": Image.BILINEAR, "area": Image.BOX, "nearest": Image.NEAREST}

# (image id, mode, width, height): the models' 192x192, a strong shrink, odd sizes, an enlargement.
REAL = [
    ("ISIC_0024306", "bilinear", 192, 192),
    ("ISIC_0024307", "bilinear", 192, 192),
    ("ISIC_0024308", "bilinear", 192, 192),
    ("ISIC_0024307", "bilinear", 61, 47),
    ("ISIC_0024308", "area", 96, 72),
    ("ISIC_0024306", "nearest", 192, 192),
    ("ISIC_0024308", "nearest", 77, 53),
]
SYNTHETIC = [("bilinear", 40, 31), ("bilinear", 5, 4), ("bilinear", 29, 3), ("area", 40, 31), ("area", 5, 4),
             ("nearest", 40, 31), ("nearest", 5, 4)]
FLOAT = [("bilinear", 23, 37), ("bilinear", 3, 2), ("area", 23, 37), ("area", 3, 2), ("nearest", 23, 37)]
TORCH_SIZES = [(23, 37), (61, 45), (4, 3)]


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)
    manifest = {"images": {}, "resize": [], "synthetic": [], "floatmap": [], "torch_bilinear": []}

    for image_id in sorted({r[0] for r in REAL}):
        im = Image.open(os.path.join(args.shared, "data/ham10000/images", image_id + ".jpg")).convert("RGB")
        manifest["images"][image_id] = {"width": im.width, "height": im.height, "fnv1a64": fnv1a64(im.tobytes())}
    for image_id, mode, w, h in REAL:
        im = Image.open(os.path.join(args.shared, "data/ham10000/images", image_id + ".jpg")).convert("RGB")
        name = "%s.%s.%dx%d.png" % (image_id, mode, w, h)
        im.resize((w, h), MODES[mode]).save(out(name), optimize=True)
        manifest["resize"].append({"image": image_id, "mode": mode, "width": w, "height": h, "file": name})

    rng = np.random.default_rng(7)
    synthetic = Image.fromarray(rng.integers(0, 256, size=(9, 13, 3), dtype=np.uint8), "RGB")
    synthetic.save(out("synthetic.png"))
    for mode, w, h in SYNTHETIC:
        name = "synthetic.%s.%dx%d.png" % (mode, w, h)
        synthetic.resize((w, h), MODES[mode]).save(out(name))
        manifest["synthetic"].append({"mode": mode, "width": w, "height": h, "file": name})

    fmap = rng.standard_normal((5, 7)).astype(np.float32)
    fmap.tofile(out("floatmap.f32"))
    for mode, w, h in FLOAT:
        name = "floatmap.%s.%dx%d.f32" % (mode, w, h)
        np.asarray(Image.fromarray(fmap, "F").resize((w, h), MODES[mode]), dtype=np.float32).tofile(out(name))
        manifest["floatmap"].append({"mode": mode, "width": w, "height": h, "file": name})
    for w, h in TORCH_SIZES:
        name = "floatmap.torch_bilinear.%dx%d.f32" % (w, h)
        t = torch.from_numpy(fmap)[None, None].double()
        up = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        up.float().numpy().tofile(out(name))
        manifest["torch_bilinear"].append({"width": w, "height": h, "file": name})

    orientation = {}
    ids = np.zeros((2, 3, 3), dtype=np.uint8)
    ids[..., 0] = np.arange(6).reshape(2, 3)
    for o in range(1, 9):
        im = Image.fromarray(ids, "RGB")
        im.getexif()[0x0112] = o
        t = ImageOps.exif_transpose(im)
        orientation[str(o)] = {"width": t.width, "height": t.height,
                               "ids": np.asarray(t)[..., 0].reshape(-1).tolist()}
    with open(out("orientation.json"), "w") as f:
        json.dump(orientation, f, indent=1)

    # Four flat quadrants survive JPEG compression well enough to check where each one went.
    quad = np.zeros((24, 40, 3), dtype=np.uint8)
    quad[:12, :20] = (230, 30, 30)
    quad[:12, 20:] = (30, 230, 30)
    quad[12:, :20] = (30, 30, 230)
    quad[12:, 20:] = (240, 240, 240)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(quad, "RGB").save(out("exif6.jpg"), quality=95, exif=exif.tobytes())
    ImageOps.exif_transpose(Image.open(out("exif6.jpg")).convert("RGB")).save(out("exif6.pil.png"))

    with open(out("manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(out(n)) for n in os.listdir(args.out))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(args.out)), total, args.out))


if __name__ == "__main__":
    main()
