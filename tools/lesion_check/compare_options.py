"""Measures candidate lesion checks side by side on a classifier (the design study behind
`dermal fit-check`; its results are in docs/lesion_check.md).

Every score is fitted on lesion images only (HAM10000 train + the ISIC 2017 train part), its
threshold is set on the validation parts, and it is reported on images held out from both: the
HAM10000 test split, the ISIC 2017 test part and every out-of-domain source of make_ood_sets.py.
The model runs in PyTorch (tools/reference/onnx_torch.py), independently of Dermal.

    /usr/bin/python3 tools/lesion_check/compare_options.py --model models/skinnet_mnv2_ham_isic224.onnx \
        --ood /tmp/ood --shared ../shared
"""
import argparse
import csv
import json
import os
import sys

import numpy as np
import onnx
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../reference"))
import onnx_torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def load_card(model_path):
    card = json.load(open(os.path.splitext(model_path)[0] + ".json"))
    p = card["preprocess"]
    return card["input"]["width"], card["input"]["height"], p["scale"], np.array(p["mean"]), np.array(p["std"])


def spatial_tensors(model):
    """Names of the 4-D activations in graph order, with their strides (from a probe run)."""
    return [n.output[0] for n in model.graph.node if n.op_type in ("Relu", "Clip", "Add")]


def auroc(inside, outside):
    """P(score of an outside image > score of an inside one), ties counted half."""
    a, b = np.asarray(inside), np.asarray(outside)
    allv = np.concatenate([a, b])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    ranks[order] = np.arange(1, len(allv) + 1)
    for v in np.unique(allv):  # average ties
        m = allv == v
        ranks[m] = ranks[m].mean()
    rb = ranks[len(a):].sum()
    return (rb - len(b) * (len(b) + 1) / 2) / (len(a) * len(b))


class Extractor:
    def __init__(self, model_path, layers):
        self.model = onnx.load(model_path)
        self.net = onnx_torch.Interpreter(self.model)
        self.w, self.h, self.scale, self.mean, self.std = load_card(model_path)
        self.layers = layers
        self.logits = self.model.graph.output[0].name

    def prepare(self, path):
        im = Image.open(path).convert("RGB").resize((self.w, self.h), Image.BILINEAR)
        x = (np.asarray(im, dtype=np.float64) * self.scale - self.mean) / self.std
        return torch.from_numpy(x.transpose(2, 0, 1).astype(np.float32))

    def run(self, paths, batch=32):
        out = {"logits": [], "input": [], **{l: [] for l in self.layers}}
        with torch.no_grad():
            for i in range(0, len(paths), batch):
                x = torch.stack([self.prepare(p) for p in paths[i:i + batch]])
                r = self.net.run({self.net.input_names[0]: x}, keep=self.layers)
                # the input's colour: channel means, standard deviations and correlations
                flat = x.flatten(2)
                m, sd = flat.mean(2), flat.std(2)
                z = (flat - m[:, :, None]) / (sd[:, :, None] + 1e-6)
                corr = torch.stack([(z[:, a] * z[:, b]).mean(1) for a, b in ((0, 1), (0, 2), (1, 2))], 1)
                out["input"].append(torch.cat([m, sd, corr], 1).numpy())
                out["logits"].append(r[self.logits].numpy())
                for l in self.layers:
                    a = r[l]
                    # per channel: mean and standard deviation over H, W
                    out[l].append(torch.cat([a.mean((2, 3)), a.std((2, 3))], 1).numpy())
        return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}


def gaussian(x, shrink=0.01):
    mu = x.mean(0)
    cov = np.cov(x - mu, rowvar=False)
    cov += shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    return mu, np.linalg.inv(cov)


def maha(x, mu, prec):
    d = x - mu
    return np.einsum("ij,jk,ik->i", d, prec, d)


def class_maha_fit(feats, labels, shrink=0.01):
    means = np.stack([feats[labels == c].mean(0) for c in np.unique(labels)])
    centred = feats - means[np.searchsorted(np.unique(labels), labels)]
    cov = centred.T @ centred / len(feats)
    cov += shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    return means, np.linalg.inv(cov)


def class_maha(x, means, prec):
    return np.min(np.stack([maha(x, m, prec) for m in means], 1), 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/skinnet_mnv2_ham_isic224.onnx")
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--ood", required=True)
    ap.add_argument("--fit-limit", type=int, default=3000)
    ap.add_argument("--layers", nargs="*")
    ap.add_argument("--pass-rate", type=float, default=0.99, help="validation lesions that must pass")
    ap.add_argument("--cache", help="keep the extracted features in this .npz")
    ap.add_argument("--half", choices=["design", "report"], default="design",
                    help="which half of each out-of-domain source to score")
    args = ap.parse_args()
    torch.set_num_threads(1)

    meta = list(csv.DictReader(open(os.path.join(args.shared, "data/ham10000/metadata.csv"))))
    ham = lambda s: [os.path.join(args.shared, "data/ham10000/images", r["image_id"] + ".jpg") for r in meta if r["split"] == s]
    ham_dx = {r["image_id"]: r["dx"] for r in meta}
    isic = list(csv.DictReader(open(os.path.join(HERE, "../train/isic2017_split.csv"))))
    isic_p = lambda s: [os.path.join(args.shared, "data/isic2017/images", r["image_id"] + ".jpg") for r in isic if r["split"] == s]
    isic_dx = {r["image_id"]: r["dx"] for r in isic}
    rng = np.random.default_rng(0)
    fit = list(rng.permutation(ham("train")))[: args.fit_limit] + isic_p("train")
    val = ham("val") + isic_p("val")
    sets = {"ham_test": ham("test"), "isic_test": isic_p("test")}
    for source in sorted(os.listdir(args.ood)):
        sets[source] = sorted(os.path.join(args.ood, source, f) for f in os.listdir(os.path.join(args.ood, source)))

    model = onnx.load(args.model)
    names = [n.output[0] for n in model.graph.node]
    layers = args.layers or [n for n in names if n.endswith("Relu_1_output_0") or n.endswith("stem.5/Relu_output_0")]
    ex = Extractor(args.model, layers)
    label_of = lambda p: {**ham_dx, **isic_dx}[os.path.splitext(os.path.basename(p))[0]]
    feats = {}
    if args.cache and os.path.exists(args.cache):
        blob = np.load(args.cache, allow_pickle=True)
        feats = blob["feats"].item()
    for name, paths in [("fit", fit), ("val", val)] + list(sets.items()):
        if name not in feats:
            feats[name] = ex.run(paths)
            print("extracted", name, len(paths), file=sys.stderr)
    if args.cache:
        np.savez(args.cache, feats=np.array(feats, dtype=object))
    # Design on the even-numbered out-of-domain images; the odd ones are reported apart.
    half = {"design": lambda a: a[0::2], "report": lambda a: a[1::2]}[args.half]
    for k in list(feats):
        if k not in ("fit", "val", "ham_test", "isic_test"):
            feats[k] = {n: half(v) for n, v in feats[k].items()}
    fit_labels = np.array([label_of(p) for p in fit])
    last = layers[-1]
    C = feats["fit"][last].shape[1] // 2

    scores = {}  # name -> {set: score array}; higher = less like a lesion image
    def add(name, fn):
        scores[name] = {k: fn(v) for k, v in feats.items()}
    lse = lambda l: np.log(np.exp(l - l.max(1, keepdims=True)).sum(1)) + l.max(1)
    add("max softmax", lambda f: -np.exp(f["logits"].max(1) - lse(f["logits"])))
    add("max logit", lambda f: -f["logits"].max(1))
    add("energy", lambda f: -lse(f["logits"]))
    means, prec = class_maha_fit(feats["fit"][last][:, :C], fit_labels)
    add("Mahalanobis, penultimate (class means)", lambda f: class_maha(f[last][:, :C], means, prec))
    mu, p1 = gaussian(feats["fit"][last][:, :C])
    add("Mahalanobis, penultimate (one Gaussian)", lambda f: maha(f[last][:, :C], mu, p1))
    fitn = feats["fit"][last][:, :C] / np.linalg.norm(feats["fit"][last][:, :C], axis=1, keepdims=True)
    def knn(f, k=10):
        x = f[last][:, :C] / np.linalg.norm(f[last][:, :C], axis=1, keepdims=True)
        return -np.sort(x @ fitn.T, 1)[:, -k]
    add("kNN cosine (k=10), penultimate", knn)
    for l in layers[:-1]:
        m, p = gaussian(feats["fit"][l])
        add("channel mean+std, " + l.split("/")[-2], lambda f, l=l, m=m, p=p: maha(f[l], m, p))

    m_in, p_in = gaussian(feats["fit"]["input"])
    add("input colour (means, stds, correlations)", lambda f: maha(f["input"], m_in, p_in))

    # Combinations: each part divided by its own validation quantile, then the larger taken.
    def norm(name, q):
        return {k: v / np.quantile(scores[name]["val"], q) for k, v in scores[name].items()}
    pen = "Mahalanobis, penultimate (class means)"
    for l in layers[:-1]:
        low = "channel mean+std, " + l.split("/")[-2]
        a, b = norm(pen, 0.995), norm(low, 0.995)
        scores["max(" + pen.split(",")[0] + " pen, " + l.split("/")[-2] + ")"] = {k: np.maximum(a[k], b[k]) for k in a}

    def combo(parts, how, q=0.99):
        ns = [norm(p, q) for p in parts]
        if how == "sum":
            return {k: sum(n[k] for n in ns) for k in ns[0]}
        return {k: np.max(np.stack([n[k] for n in ns]), 0) for k in ns[0]}
    short = {"pen": pen, "in": "input colour (means, stds, correlations)"}
    for l in layers[:-1]:
        short[l.split("/")[-2]] = "channel mean+std, " + l.split("/")[-2]
    for parts in (["in", "blocks.3"], ["pen", "in", "blocks.3"], ["pen", "in", "stem.5", "blocks.3"],
                  ["in", "stem.5", "blocks.3"], ["pen", "in", "stem.5", "blocks.1", "blocks.3", "blocks.5"],
                  ["in", "stem.5", "blocks.1", "blocks.3", "blocks.5"]):
        for how in ("sum", "max"):
            scores["%s(%s)" % (how, " + ".join(parts))] = combo([short[p] for p in parts], how)

    ood = [k for k in sets if k not in ("ham_test", "isic_test")]
    print("| score | " + " | ".join("AUROC %s" % s for s in ood) + " | HAM test pass | ISIC test pass | " +
          " | ".join("%s refused" % s for s in ood) + " |")
    for name, s in scores.items():
        thr = np.quantile(s["val"], args.pass_rate)
        inside = np.concatenate([s["ham_test"], s["isic_test"]])
        row = [("%.3f" % auroc(inside, s[o])) for o in ood]
        row += ["%.1f%%" % (100 * np.mean(s[k] <= thr)) for k in ("ham_test", "isic_test")]
        row += ["%.1f%%" % (100 * np.mean(s[o] > thr)) for o in ood]
        print("| %s | %s |" % (name, " | ".join(row)))

    per_source_study(feats, len(ham("val")))


def per_source_study(F, ham_val):
    """Thresholds per source (as `dermal fit-check` sets them: the larger of HAM10000 val's and
    ISIC val's 99th percentile), and the layers read by each part."""
    L = {k.split("/")[-2]: k for k in F["fit"] if k not in ("logits", "input")}

    def feat(k, spec):
        cols = []
        for lay, kind in spec:
            X = F[k][L[lay]]
            cols.append(X[:, :X.shape[1] // 2] if kind == "m" else X)
        return np.concatenate(cols, 1)

    def part(spec, classes, q=0.99):
        X = feat("fit", spec)
        if classes:
            means, p = class_maha_fit(X, F["fit"]["logits"].argmax(1))
            fn = lambda Z: class_maha(Z, means, p)
        else:
            m, p = gaussian(X)
            fn = lambda Z: maha(Z, m, p)
        v = fn(feat("val", spec))
        scale = max(np.quantile(v[:ham_val], q), np.quantile(v[ham_val:], q))
        return {k: fn(feat(k, spec)) / scale for k in F}

    configs = {
        "content blocks.7 + appearance blocks.3": [([("blocks.7", "m")], True), ([("blocks.3", "ms")], False)],
        "content blocks.7 + appearance stem.5, blocks.3": [([("blocks.7", "m")], True), ([("stem.5", "ms"), ("blocks.3", "ms")], False)],
        "content blocks.7, blocks.5 + appearance blocks.3": [([("blocks.7", "m"), ("blocks.5", "m")], True), ([("blocks.3", "ms")], False)],
        "content blocks.7 + appearance blocks.1, .3, .5": [([("blocks.7", "m")], True), ([("blocks.1", "ms"), ("blocks.3", "ms"), ("blocks.5", "ms")], False)],
        "content blocks.7, blocks.5 + appearance stem.5, blocks.3": [([("blocks.7", "m"), ("blocks.5", "m")], True), ([("stem.5", "ms"), ("blocks.3", "ms")], False)],
    }
    print()
    print("| parts (thresholds per source) | HAM test pass | ISIC test pass | natural photos refused | synthetic | text | skin |")
    print("|---|---|---|---|---|---|---|")
    for name, parts in configs.items():
        P = [part(spec, classes) for spec, classes in parts]
        s = {k: np.max(np.stack([p[k] for p in P]), 0) for k in F}
        natural = np.concatenate([s["photos"], s["wallpapers"]])
        print("| %s | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% |" % (
            name, 100 * (s["ham_test"] <= 1).mean(), 100 * (s["isic_test"] <= 1).mean(), 100 * (natural > 1).mean(),
            100 * (s["synthetic"] > 1).mean(), 100 * (s["text"] > 1).mean(), 100 * (s["skin"] > 1).mean()))


if __name__ == "__main__":
    main()
