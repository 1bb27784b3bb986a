"""Measures Dermal's lesion check on images held out from its fitting: the HAM10000 test split,
the ISIC 2017 test part (other clinics and cameras) and every out-of-domain source written by
make_ood_sets.py. Prints README's table: pass rates, refusal rates and AUROC per source.

    /usr/bin/python3 tools/lesion_check/measure.py --ood /tmp/ood [--model M] [--binary build/dermal]
"""
import argparse
import csv
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "../..")


def scores(binary, model, paths, chunk=400):
    """The lesion-check score of each image (warn mode: every image gets one)."""
    out = []
    for i in range(0, len(paths), chunk):
        cmd = [binary, "predict", "--json", "--lesion-check", "warn", "--threads", "1"] + (["--model", model] if model else [])
        r = subprocess.run(cmd + paths[i:i + chunk], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            j = json.loads(line)
            if "error" in j:
                print("skipped %s: %s" % (j["file"], j["error"]), file=sys.stderr)
                continue
            check = j["lesion_check"]
            if not check["available"]:
                sys.exit("the model has no lesion-check statistics: " + check["reason"])
            out.append((check["score"], check["threshold"]))
    return out


def auroc(inside, outside):
    """P(an out-of-domain image scores above an in-domain one), ties counted half."""
    wins = 0.0
    s_in = sorted(inside)
    import bisect
    for v in outside:
        lo, hi = bisect.bisect_left(s_in, v), bisect.bisect_right(s_in, v)
        wins += lo + 0.5 * (hi - lo)
    return wins / (len(inside) * len(outside))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dermal"))
    ap.add_argument("--model", default="")
    ap.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    ap.add_argument("--ood", required=True)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    meta = csv.DictReader(open(os.path.join(args.shared, "data/ham10000/metadata.csv")))
    ham = [os.path.join(args.shared, "data/ham10000/images", r["image_id"] + ".jpg") for r in meta if r["split"] == "test"]
    isic = [os.path.join(args.shared, "data/isic2017/images", r["image_id"] + ".jpg")
            for r in csv.DictReader(open(os.path.join(ROOT, "tools/train/isic2017_split.csv"))) if r["split"] == "test"]
    inside = {"HAM10000 test": scores(args.binary, args.model, ham), "ISIC 2017 test part": scores(args.binary, args.model, isic)}
    outside = {}
    for source in sorted(os.listdir(args.ood)):
        folder = os.path.join(args.ood, source)
        outside[source] = scores(args.binary, args.model, sorted(os.path.join(folder, f) for f in os.listdir(folder)))

    all_in = [s for v in inside.values() for s, _ in v]
    result = {"in_domain": {}, "out_of_domain": {}}
    print("| lesion images (held out) | images | passed |")
    print("|---|---|---|")
    for name, v in inside.items():
        passed = sum(s <= t for s, t in v) / len(v)
        result["in_domain"][name] = {"images": len(v), "passed": passed}
        print("| %s | %d | %.1f%% |" % (name, len(v), 100 * passed))
    print()
    print("| out-of-domain source | images | refused | AUROC vs held-out lesions |")
    print("|---|---|---|---|")
    for name, v in outside.items():
        refused = sum(s > t for s, t in v) / len(v)
        a = auroc(all_in, [s for s, _ in v])
        result["out_of_domain"][name] = {"images": len(v), "refused": refused, "auroc": a}
        print("| %s | %d | %.1f%% | %.3f |" % (name, len(v), 100 * refused, a))
    if args.json:
        json.dump(result, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
