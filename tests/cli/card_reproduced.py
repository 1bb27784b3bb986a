#!/usr/bin/python3
"""`dermal eval` reproduces the bundled model's card: the figures in models/NAME.json "metrics",
on the HAM10000 test split and the held-out ISIC 2017 part, within 1 point (0.01; AUC within
0.01). A drift means the preprocessing, the engine or the model file no longer match training.

    card_reproduced.py DERMAL MODEL.onnx SHARED_DIR SOURCE_DIR
"""

import json
import os
import subprocess
import sys


def evaluate(dermal, model, images, labels):
    cmd = [dermal, "eval", "--model", model, "--images", images, "--labels", labels, "--split", "test",
           "--json", "--bootstrap", "0"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("FAIL: %s exited %d\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    return json.loads(p.stdout)


def main():
    dermal, model, shared, source = sys.argv[1:5]
    card = json.load(open(os.path.splitext(model)[0] + ".json"))["metrics"]
    ham = evaluate(dermal, model, os.path.join(shared, "data/ham10000/images"),
                   os.path.join(shared, "data/ham10000/metadata.csv"))
    isic = evaluate(dermal, model, os.path.join(shared, "data/isic2017/images"),
                    os.path.join(source, "tools/train/isic2017_split.csv"))
    checks = [
        ("HAM10000 images", ham["images"], card["ham10000_test"]["images"], 0),
        ("HAM10000 balanced accuracy", ham["balanced_accuracy"], card["ham10000_test"]["balanced_accuracy"], 0.01),
        ("HAM10000 accuracy", ham["accuracy"], card["ham10000_test"]["accuracy"], 0.01),
        ("HAM10000 melanoma recall", ham["per_class"]["mel"]["recall"], card["ham10000_test"]["melanoma_recall"], 0.01),
        ("HAM10000 ECE", ham["ece"], card["ham10000_test"]["ece"], 0.01),
        ("ISIC 2017 images", isic["images"], card["isic2017_heldout_test"]["images"], 0),
        ("ISIC 2017 melanoma AUC", isic["per_class"]["mel"]["auc"], card["isic2017_heldout_test"]["melanoma_auc"], 0.01),
        ("ISIC 2017 melanoma recall", isic["per_class"]["mel"]["recall"], card["isic2017_heldout_test"]["melanoma_recall"], 0.01),
    ]
    bad = 0
    for name, got, want, tol in checks:
        ok = abs(got - want) <= tol + 1e-9
        bad += not ok
        print("%-28s measured %8.4f  card %8.4f  %s" % (name, got, want, "ok" if ok else "DIFFERS (tolerance %g)" % tol))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
