#!/usr/bin/python3
"""Does decoding a big photo at reduced size change the answer? Every HAM10000 test image enlarged
to 12 MP (4000 x 3000, bicubic, JPEG quality 92), then `dermal predict` twice: as served (decoded by
DCT scaling to 1500 x 1125, `--display-size 1024`, the default) and decoding every pixel
(`--display-size 0`). Reports top-1 agreement and the mean and largest |dp| over all classes.

    /usr/bin/python3 bench/phone_agreement.py [--limit N] [--chunk 50]

Targets (the real-photos issue): top-1 agreement >= 99%, mean |dp| <= 0.01.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def predict(binary, paths, display):
    cmd = [binary, "predict", "--json", "--threads", "1", "--lesion-check", "off", "--display-size", str(display)]
    out = subprocess.run(cmd + paths, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    for r in rows:
        if "error" in r:
            sys.exit("%s: %s" % (r["file"], r["error"]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dermal"))
    ap.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=50, help="photos made (and deleted) at a time")
    a = ap.parse_args()
    meta = csv.DictReader(open(os.path.join(a.shared, "data/ham10000/metadata.csv")))
    ids = [r["image_id"] for r in meta if r["split"] == "test"]
    if a.limit:
        ids = ids[: a.limit]
    agree, n, dsum, dmax, classes = 0, 0, 0.0, 0.0, 0
    decoded = None
    for i in range(0, len(ids), a.chunk):
        with tempfile.TemporaryDirectory(prefix="dermal_agree_") as folder:
            paths = []
            for image_id in ids[i:i + a.chunk]:
                p = os.path.join(folder, image_id + ".jpg")
                Image.open(os.path.join(a.shared, "data/ham10000/images", image_id + ".jpg")).convert("RGB").resize(
                    (4000, 3000), Image.BICUBIC).save(p, quality=92)
                paths.append(p)
            served, full = predict(a.binary, paths, 1024), predict(a.binary, paths, 0)
        for s, f in zip(served, full):
            agree += s["top"][0]["label"] == f["top"][0]["label"]
            ps, pf = s["probabilities"], f["probabilities"]
            for k in ps:
                d = abs(ps[k] - pf[k])
                dsum += d
                dmax = max(dmax, d)
                classes += 1
            n += 1
        print("  %d of %d photos" % (n, len(ids)), file=sys.stderr)
    print("HAM10000 test images enlarged to 12 MP: %d photos" % n)
    print("  top-1 agreement, reduced vs full decode: %.2f%% (target >= 99%%)" % (100.0 * agree / n))
    print("  mean |dp| over all classes: %.4f (target <= 0.01); largest %.4f" % (dsum / classes, dmax))


if __name__ == "__main__":
    main()
