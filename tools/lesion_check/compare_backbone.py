#!/usr/bin/python3
"""The second design study of the lesion check (docs/lesion_check.md, "A pretrained backbone"):
the ImageNet-derived MobileNetV2 of nsfwjs as the check's features, at which input size and which
layers, against the bundled classifier's own features (compare_options.py, whose cache it reads).

Same protocol as compare_options.py: fitted on 3,000 HAM10000 train images and the ISIC 2017 train
part, each part's scale at the 99th percentile of HAM10000 val and of ISIC val (the larger), scored
on the held-out test splits and on every out-of-domain source of make_ood_sets.py. PyTorch runs the
network (tools/train/pretrained/mobilenet_v2.py), independently of Dermal.

    /usr/bin/python3 tools/lesion_check/compare_options.py --ood /tmp/ood --cache /tmp/feats.npz
    /usr/bin/python3 tools/lesion_check/compare_backbone.py WEIGHTS.pt --ood /tmp/ood \
        --classifier-cache /tmp/feats.npz [--sizes 112 160] [--cache-dir /tmp/backbone]

WEIGHTS.pt: tools/train/pretrained/convert_nsfwjs.py's mobilenet_v2_nsfwjs.pt.
"""
import argparse
import csv
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../train/pretrained"))
from mobilenet_v2 import MobileNetV2  # noqa: E402

# stage index in MobileNetV2.features -> Keras name (stride at that stage)
STAGES = {4: "block_3 (s8)", 6: "block_5 (s8)", 13: "block_12 (s16)", 17: "block_16 (s32)", 18: "Conv_1 (s32)"}
EIGHT = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.png", "grass.png", "brick.png", "camera.png",
         "hubble_deep_field.png"]


def image_sets(shared, ood):
    meta = list(csv.DictReader(open(os.path.join(shared, "data/ham10000/metadata.csv"))))
    ham = lambda s: [os.path.join(shared, "data/ham10000/images", r["image_id"] + ".jpg") for r in meta if r["split"] == s]
    isic = list(csv.DictReader(open(os.path.join(HERE, "../train/isic2017_split.csv"))))
    isic_p = lambda s: [os.path.join(shared, "data/isic2017/images", r["image_id"] + ".jpg") for r in isic if r["split"] == s]
    rng = np.random.default_rng(0)  # the same 3,000 as compare_options.py
    sets = {"fit": list(rng.permutation(ham("train")))[:3000] + isic_p("train"), "val": ham("val") + isic_p("val"),
            "ham_test": ham("test"), "isic_test": isic_p("test")}
    for s in sorted(os.listdir(ood)):
        sets[s] = sorted(os.path.join(ood, s, f) for f in os.listdir(os.path.join(ood, s)))
    return sets, len(ham("val"))


def extract(weights, sets, size):
    """Channel means and standard deviations of each STAGES output, RGB / 255 at size x size."""
    net = MobileNetV2()
    net.load_state_dict(torch.load(weights, map_location="cpu")["state_dict"], strict=False)
    net.eval()
    out = {}
    with torch.no_grad():
        for name, paths in sets.items():
            acc = {k: [] for k in STAGES}
            for i in range(0, len(paths), 32):
                x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR),
                                                             dtype=np.float32).transpose(2, 0, 1) / 255.0)
                                 for p in paths[i:i + 32]])
                for k, stage in enumerate(net.features[:max(STAGES) + 1]):
                    x = stage(x)
                    if k in STAGES:
                        acc[k].append(torch.cat([x.mean((2, 3)), x.std((2, 3))], 1).numpy())
            out[name] = {k: np.concatenate(v).astype(np.float64) for k, v in acc.items()}
            print("size %d: %s, %d images" % (size, name, len(paths)), file=sys.stderr)
    return out


def fit_distance(X, labels):
    """Mahalanobis to the nearest label mean, shared covariance shrunk as Dermal does (d / (n + d))."""
    u = np.unique(labels)
    means = np.stack([X[labels == c].mean(0) for c in u])
    C = X - means[np.searchsorted(u, labels)]
    cov = C.T @ C / len(X)
    d = len(cov)
    s = min(0.5, max(0.01, d / (len(X) + d)))
    P = np.linalg.inv((1 - s) * cov + s * np.trace(cov) / d * np.eye(d))
    return lambda Z: np.min(np.stack([np.einsum("ij,jk,ik->i", Z - m, P, Z - m) for m in means], 1), 1)


def part(F, spec, labels, ham_val, q=0.99):
    """spec: [(key, 'm' | 'ms')]: the channel means, or the means and stds, of each key's features."""
    feat = lambda k: np.concatenate([F[k][key][:, :F[k][key].shape[1] // 2] if kind == "m" else F[k][key]
                                     for key, kind in spec], 1)
    fn = fit_distance(feat("fit"), labels)
    v = fn(feat("val"))
    scale = max(np.quantile(v[:ham_val], q), np.quantile(v[ham_val:], q))
    return {k: fn(feat(k)) / scale for k in F}


def report(name, parts, photos):
    s = {k: np.max(np.stack([p[k] for p in parts]), 0) for k in parts[0]}
    natural = np.concatenate([s["photos"], s["wallpapers"]])
    eight = [photos.index(p) for p in EIGHT]
    print("| %s | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %d of 8 | %.2f |" % (
        name, 100 * (s["ham_test"] <= 1).mean(), 100 * (s["isic_test"] <= 1).mean(), 100 * (natural > 1).mean(),
        100 * (s["synthetic"] > 1).mean(), 100 * (s["text"] > 1).mean(), 100 * (s["skin"] > 1).mean(),
        (s["photos"][eight] > 1).sum(), s["photos"][photos.index("chelsea.png")]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--ood", required=True)
    ap.add_argument("--shared", default=os.path.join(HERE, "../../../shared"))
    ap.add_argument("--classifier-cache", help="compare_options.py's --cache: adds the classifier's own parts")
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 160])
    ap.add_argument("--cache-dir", default="/tmp/lesion_backbone_study")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets, ham_val = image_sets(args.shared, args.ood)
    photos = [os.path.basename(p) for p in sets["photos"]]
    os.makedirs(args.cache_dir, exist_ok=True)
    one = np.zeros(len(sets["fit"]), int)
    print("| features (one Gaussian unless said) | HAM test pass | ISIC test pass | natural photos refused | "
          "synthetic | text | skin | the eight refused | cat's score |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        cache = os.path.join(args.cache_dir, "backbone%d.npy" % size)
        if os.path.exists(cache):
            F = np.load(cache, allow_pickle=True).item()
        else:
            F = extract(args.weights, sets, size)
            np.save(cache, F, allow_pickle=True)
        for spec in ([(13, "m")], [(13, "ms")], [(17, "m")], [(18, "m")], [(4, "ms")], [(6, "ms")], [(4, "ms"), (13, "m")],
                     [(4, "ms"), (13, "ms")]):
            label = " + ".join("%s %s" % (STAGES[k].split(" ")[0], "means" if kind == "m" else "means, stds") for k, kind in spec)
            report("%d px: %s" % (size, label), [part(F, spec, one, ham_val)], photos)
        if args.classifier_cache:
            C = np.load(args.classifier_cache, allow_pickle=True)["feats"].item()
            L = {k.split("/")[-2]: k for k in C["fit"] if k not in ("logits", "input")}
            classes = C["fit"]["logits"].argmax(1)
            content = part(C, [(L["blocks.7"], "m"), (L["blocks.5"], "m")], classes, ham_val)
            appearance = part(C, [(L["blocks.1"], "ms"), (L["blocks.3"], "ms")], one, ham_val)
            if size == args.sizes[0]:
                report("the classifier's own: max(content, appearance)", [content, appearance], photos)
            report("%d px: max(classifier's two, block_3 + block_12 means, stds)" % size,
                   [content, appearance, part(F, [(4, "ms"), (13, "ms")], one, ham_val)], photos)


if __name__ == "__main__":
    main()
