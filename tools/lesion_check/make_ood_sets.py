"""Writes the out-of-domain images the lesion check is measured on, one folder per source.

No out-of-domain image is ever used to fit the check (it is fitted on lesion images only), so
every image written here is held out. Sources, all from Debian packages or made from ../shared:
  photos      python3-skimage's sample images (the cat, the coffee cup, the astronaut, ...)
  wallpapers  desktop wallpapers and their crops (gnome-backgrounds, mate-backgrounds, ukui-wallpapers)
  synthetic   solid colours (skin tones included), gradients, noise, heavily blurred photos
  text        rendered text pages and screenshot-like layouts (DejaVu fonts)
  skin        lesion-free skin: crops of HAM10000 *test* images where the lesion mask is empty

    /usr/bin/python3 tools/lesion_check/make_ood_sets.py --shared ../shared --out /tmp/ood
"""
import argparse
import csv
import glob
import os
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
WALLPAPER_DIRS = ["/usr/share/backgrounds"]
FONTS = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/*.ttf"))


def images_in(folder, min_side=64):
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)):
        if not path.lower().endswith((".png", ".jpg", ".jpeg", ".webp")):
            continue
        try:
            im = Image.open(path)
            im.load()
        except Exception:
            continue
        if min(im.size) >= min_side:
            out.append((path, im.convert("RGB")))
    return out


def save(im, out, source, name):
    os.makedirs(os.path.join(out, source), exist_ok=True)
    im.convert("RGB").save(os.path.join(out, source, name + ".png"))


def random_crop(rng, im, frac):
    w, h = im.size
    side = int(min(w, h) * frac)
    x, y = rng.randint(0, w - side), rng.randint(0, h - side)
    return im.crop((x, y, x + side, y + side))


def text_page(rng, size, dark):
    bg = (30, 30, 36) if dark else (rng.randint(235, 255),) * 3
    fg = (220, 220, 220) if dark else (20, 20, 20)
    im = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(im)
    words = ("skin lesion dermoscopy melanoma nevus upload image result probability the of and to "
             "in is for on with as by this that page server model class report patient").split()
    y = 10
    while y < size[1] - 20:
        font = ImageFont.truetype(rng.choice(FONTS), rng.randint(12, 28))
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
        d.text((10, y), line, fill=fg, font=font)
        y += font.size + rng.randint(4, 14)
    return im


def screenshot(rng, size):
    im = Image.new("RGB", size, (rng.randint(230, 255),) * 3)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, size[0], 40), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    font = ImageFont.truetype(rng.choice(FONTS), 18)
    d.text((12, 10), "Dermal - upload", fill=(255, 255, 255), font=font)
    for _ in range(rng.randint(3, 7)):
        x0, y0 = rng.randint(0, size[0] - 80), rng.randint(50, size[1] - 40)
        d.rectangle((x0, y0, x0 + rng.randint(60, 300), y0 + rng.randint(20, 120)),
                    outline=(120, 120, 120), fill=tuple(rng.randint(150, 255) for _ in range(3)))
        d.text((x0 + 6, y0 + 4), rng.choice(["Choose file", "Analyse", "Melanoma 12%", "Settings"]),
               fill=(0, 0, 0), font=font)
    return im


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "../../../shared"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--skin", type=int, default=200, help="lesion-free skin crops to make")
    args = ap.parse_args()
    rng = random.Random(2026)

    photos = images_in(SKIMAGE_DATA)
    for path, im in photos:
        save(im, args.out, "photos", os.path.splitext(os.path.basename(path))[0])

    walls = [w for d in WALLPAPER_DIRS for w in images_in(d)]
    for path, im in walls:
        stem = os.path.splitext(os.path.relpath(path, "/usr/share/backgrounds"))[0].replace("/", "_")
        im.thumbnail((1024, 1024))
        save(im, args.out, "wallpapers", stem)
        for k in range(3):
            save(random_crop(rng, im, rng.uniform(0.25, 0.6)), args.out, "wallpapers", "%s_crop%d" % (stem, k))

    for k in range(40):  # solid colours: half of them skin tones
        if k % 2:
            c = (rng.randint(170, 240), rng.randint(120, 190), rng.randint(100, 170))
        else:
            c = tuple(rng.randint(0, 255) for _ in range(3))
        save(Image.new("RGB", (rng.randint(100, 600), rng.randint(100, 600)), c), args.out, "synthetic", "solid%02d" % k)
    for k in range(20):  # gradients
        a = np.linspace(0, 1, 256)[None, :, None]
        c0, c1 = np.array([rng.randint(0, 255) for _ in range(3)]), np.array([rng.randint(0, 255) for _ in range(3)])
        g = (c0 + (c1 - c0) * a).repeat(256, 0).astype(np.uint8)
        save(Image.fromarray(g).rotate(rng.randint(0, 359)), args.out, "synthetic", "gradient%02d" % k)
    for k in range(20):  # noise
        n = np.random.default_rng(k).integers(0, 256, (200, 200, 3), dtype=np.uint8)
        save(Image.fromarray(n), args.out, "synthetic", "noise%02d" % k)
    for k, (path, im) in enumerate(photos[:20] + walls[:20]):  # heavy blur
        save(im.filter(ImageFilter.GaussianBlur(max(im.size) / 15)), args.out, "synthetic", "blur%02d" % k)

    for k in range(30):
        size = (rng.randint(300, 900), rng.randint(200, 700))
        save(text_page(rng, size, dark=k % 3 == 0), args.out, "text", "page%02d" % k)
        save(screenshot(rng, size), args.out, "text", "screen%02d" % k)

    # Lesion-free skin: the largest lesion-free square in a corner of HAM10000 test images.
    meta = list(csv.DictReader(open(os.path.join(args.shared, "data/ham10000/metadata.csv"))))
    test = [r["image_id"] for r in meta if r["split"] == "test"]
    rng.shuffle(test)
    made = 0
    for image_id in test:
        if made >= args.skin:
            break
        im = Image.open(os.path.join(args.shared, "data/ham10000/images", image_id + ".jpg")).convert("RGB")
        mask = np.array(Image.open(os.path.join(args.shared, "data/ham10000/masks", image_id + ".png")).convert("L")) > 0
        h, w = mask.shape
        best = None
        for side in range(min(h, w) // 2, 39, -4):
            for (x, y) in ((0, 0), (w - side, 0), (0, h - side), (w - side, h - side)):
                if not mask[y:y + side, x:x + side].any():
                    best = (x, y, side)
                    break
            if best:
                break
        if best:
            x, y, side = best
            save(im.crop((x, y, x + side, y + side)), args.out, "skin", image_id)
            made += 1
    for source in sorted(os.listdir(args.out)):
        print("%-11s %4d images" % (source, len(os.listdir(os.path.join(args.out, source)))))


if __name__ == "__main__":
    main()
