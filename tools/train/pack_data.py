#!/usr/bin/python3
"""Pack the training and validation images (never the test ones) into one small file.

    /usr/bin/python3 tools/train/pack_data.py [--shared ../shared] [--out .train_pack] [--size 176]

Every image is resized (stretched, as Dermal's preprocessing does) to SIZE x SIZE with PIL's
antialiased bilinear filter and stored as WebP quality 90 (about 3.6 KB each, 38 MB for the
10,700 images): small enough to travel to a GPU machine, and decoded there in seconds.
Writes OUT/images.bin (the WebP files back to back) and OUT/index.csv (image_id, source, dx,
split, offset, length). HAM10000 keeps its lesion-level split; ISIC 2017 uses
tools/train/isic2017_split.csv (make_isic_split.py). Rows in a test split are skipped here, so no
test image can reach training or model selection.
"""

import argparse
import csv
import io
import os

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def sources(shared):
    ham = os.path.join(shared, "data", "ham10000")
    for r in csv.DictReader(open(os.path.join(ham, "metadata.csv"))):
        yield r["image_id"], "ham10000", r["dx"], r["split"], os.path.join(ham, "images", r["image_id"] + ".jpg")
    isic = os.path.join(shared, "data", "isic2017")
    for r in csv.DictReader(open(os.path.join(HERE, "isic2017_split.csv"))):
        yield r["image_id"], "isic2017", r["dx"], r["split"], os.path.join(isic, "images", r["image_id"] + ".jpg")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", ".train_pack"))
    ap.add_argument("--size", type=int, default=176)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    offset, n = 0, 0
    with open(os.path.join(args.out, "images.bin"), "wb") as blob, \
            open(os.path.join(args.out, "index.csv"), "w", newline="") as idx:
        w = csv.writer(idx, lineterminator="\n")
        w.writerow(["image_id", "source", "dx", "split", "offset", "length"])
        for image_id, source, dx, split, path in sources(args.shared):
            if split == "test":
                continue
            im = Image.open(path).convert("RGB").resize((args.size, args.size), Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, "WEBP", quality=90)
            data = buf.getvalue()
            blob.write(data)
            w.writerow([image_id, source, dx, split, offset, len(data)])
            offset += len(data)
            n += 1
    print("%d images, %.1f MB" % (n, offset / 1e6))


if __name__ == "__main__":
    main()
