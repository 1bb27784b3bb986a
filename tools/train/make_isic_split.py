#!/usr/bin/python3
"""Choose, once and before any training, which ISIC 2017 images are held out.

    /usr/bin/python3 tools/train/make_isic_split.py [--data ../shared/data/isic2017] \
        [--out tools/train/isic2017_split.csv]

ISIC 2017 has no lesion or patient ids, and one lesion can appear in several images. A random
image-level split would put near-copies on both sides and inflate the held-out score. So images
are first grouped: two images whose 24x24 grey thumbnails (each standardised) correlate above
0.95 land in one group (union-find, transitively). (Looser rules, or difference hashes, chained
hundreds of smooth, unrelated images into one group; 0.95 catches the exact and near copies.) Whole groups are then assigned by a hash of their first image id: 30% test,
10% val (model selection and temperature), 60% train, stratified per class by ordering groups
within each majority class. The output has the columns `dermal eval --labels` reads:
image_id, dx, split.
"""

import argparse
import csv
import hashlib
import os

import numpy as np
from PIL import Image

FRACTIONS = (("test", 0.30), ("val", 0.10), ("train", 0.60))


def thumbnails(folder, ids):
    grey = []
    for i in ids:
        im = Image.open(os.path.join(folder, i + ".jpg")).convert("L")
        t = np.asarray(im.resize((24, 24), Image.BILINEAR), dtype=np.float64).ravel()
        grey.append((t - t.mean()) / (t.std() + 1e-6))
    return np.array(grey)


def groups_of(grey, corr_min=0.95):
    n = len(grey)
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    close = grey @ grey.T / grey.shape[1] > corr_min
    for a, b in zip(*np.nonzero(np.triu(close, 1))):
        parent[find(a)] = find(b)
    out = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data", "isic2017"))
    ap.add_argument("--out", default=os.path.join(here, "isic2017_split.csv"))
    args = ap.parse_args()

    rows = list(csv.DictReader(open(os.path.join(args.data, "metadata.csv"))))
    ids = [r["image_id"] for r in rows]
    dx = [r["dx"] for r in rows]
    groups = groups_of(thumbnails(os.path.join(args.data, "images"), ids))

    # A group's class: its majority dx (near-copies of one lesion share it almost always).
    def key(g):
        return hashlib.sha256(ids[min(g)].encode()).hexdigest()

    split = [None] * len(ids)
    for cls in sorted(set(dx)):
        mine = sorted((g for g in groups if max(set(dx[i] for i in g), key=[dx[i] for i in g].count) == cls), key=key)
        total = sum(len(g) for g in mine)
        done, k = 0, 0
        for name, frac in FRACTIONS:
            goal = done + frac * total
            while k < len(mine) and (done < goal or name == FRACTIONS[-1][0]):
                for i in mine[k]:
                    split[i] = name
                done += len(mine[k])
                k += 1

    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["image_id", "dx", "split"])
        for i in sorted(range(len(ids)), key=lambda i: ids[i]):
            w.writerow([ids[i], dx[i], split[i]])
    multi = [g for g in groups if len(g) > 1]
    print("%d images, %d groups (%d with near-copies, %d images in them)"
          % (len(ids), len(groups), len(multi), sum(len(g) for g in multi)))
    for name, _ in FRACTIONS:
        per = {c: sum(1 for i in range(len(ids)) if split[i] == name and dx[i] == c) for c in sorted(set(dx))}
        print("%-5s %4d  %s" % (name, sum(per.values()), per))


if __name__ == "__main__":
    main()
