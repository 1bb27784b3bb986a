#!/usr/bin/python3
"""Print the bundled model's card tables (markdown) from the `dermal eval --json` files that
tools/train/evaluate.sh writes: headline metrics with 95% bootstrap intervals against the baseline,
per-class recall, the confusion matrix, and calibration before and after temperature scaling.

    /usr/bin/python3 tools/train/card_tables.py build/model_card [--card models/NAME.json]

--card also writes the card's "metrics" block (what tests/cli/card_reproduced.py checks) from the
same files, rounded to 3 places.
"""

import json
import os
import sys


def load(folder, name):
    with open(os.path.join(folder, name + ".json")) as f:
        return json.load(f)


def pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)


def with_ci(v, ci, percent=True):
    if v is None:
        return "-"
    f = pct if percent else (lambda x: "%.3f" % x)
    return "%s [%s, %s]" % (f(v), f(ci[0]), f(ci[1])) if ci and ci[0] is not None else f(v)


def headline(e):
    mel = e["per_class"]["mel"]
    return [with_ci(e["balanced_accuracy"], e["ci95"]["balanced_accuracy"]),
            with_ci(mel["recall"], mel.get("recall_ci95")),
            with_ci(mel["auc"], mel.get("auc_ci95"), percent=False),
            with_ci(e["accuracy"], e["ci95"]["accuracy"]),
            with_ci(e["ece"], e["ci95"]["ece"], percent=False)]


def r3(v):
    return None if v is None else round(v, 3)


def card_metrics(folder):
    ham, isic, ham_t1, isic_t1 = (load(folder, n) for n in ("ham", "isic", "ham_t1", "isic_t1"))
    hm, im = ham["per_class"]["mel"], isic["per_class"]["mel"]
    return {
        "measured_by": "tools/train/evaluate.sh (dermal eval; 95% bootstrap intervals)",
        "ham10000_test": {
            "images": ham["images"], "balanced_accuracy": r3(ham["balanced_accuracy"]),
            "balanced_accuracy_ci95": [r3(v) for v in ham["ci95"]["balanced_accuracy"]],
            "accuracy": r3(ham["accuracy"]), "melanoma_recall": r3(hm["recall"]),
            "melanoma_recall_ci95": [r3(v) for v in hm["recall_ci95"]],
            "ece": r3(ham["ece"]), "ece_uncalibrated": r3(ham_t1["ece"])},
        "isic2017_heldout_test": {
            "images": isic["images"], "melanoma_auc": r3(im["auc"]), "melanoma_auc_ci95": [r3(v) for v in im["auc_ci95"]],
            "balanced_accuracy": r3(isic["balanced_accuracy"]), "melanoma_recall": r3(im["recall"]),
            "ece": r3(isic["ece"]), "ece_uncalibrated": r3(isic_t1["ece"])},
    }


def main():
    folder = sys.argv[1]
    if "--card" in sys.argv:
        path = sys.argv[sys.argv.index("--card") + 1]
        with open(path) as f:
            card = json.load(f)
        card["metrics"] = card_metrics(folder)
        with open(path, "w") as f:
            json.dump(card, f, indent=2)
            f.write("\n")
    ham, isic = load(folder, "ham"), load(folder, "isic")
    rows = [("HAM10000 test (%d images)" % ham["images"], "bundled", ham),
            ("", "baseline MobileNetV2", load(folder, "ham_baseline")),
            ("ISIC 2017 held-out (%d images)" % isic["images"], "bundled", isic),
            ("", "baseline MobileNetV2", load(folder, "isic_baseline"))]
    print("| test set | model | balanced accuracy | melanoma recall | melanoma-vs-rest AUC | accuracy | ECE |")
    print("|---|---|---|---|---|---|---|")
    for name, model, e in rows:
        print("| %s | %s | %s |" % (name, model, " | ".join(headline(e))))

    print("\nPer-class recall (95% interval), bundled model:\n")
    print("| class | HAM10000 images | HAM10000 recall | AUC | ISIC 2017 images | ISIC 2017 recall |")
    print("|---|---|---|---|---|---|")
    for c in ham["labels"]:
        h, i = ham["per_class"][c], isic["per_class"][c]
        print("| %s | %d | %s | %s | %s | %s |" % (c, h["support"], with_ci(h["recall"], h.get("recall_ci95")),
              "-" if h["auc"] is None else "%.3f" % h["auc"], i["support"] or "-",
              with_ci(i["recall"], i.get("recall_ci95")) if i["support"] else "-"))

    print("\nConfusion matrix, HAM10000 test (rows: true class, columns: predicted):\n")
    print("| | " + " | ".join(ham["labels"]) + " |")
    print("|---" * (len(ham["labels"]) + 1) + "|")
    for c, row in zip(ham["labels"], ham["confusion"]):
        print("| **%s** | %s |" % (c, " | ".join(str(v) for v in row)))

    print("\nCalibration (expected calibration error, 15 bins, 95% interval):\n")
    print("| test set | T = 1 (raw logits) | T = %.3f (fitted on validation) |" % ham["temperature"])
    print("|---|---|---|")
    for name, key in (("HAM10000 test", "ham"), ("ISIC 2017 held-out", "isic")):
        after, before = load(folder, key), load(folder, key + "_t1")
        print("| %s | %s | %s |" % (name, with_ci(before["ece"], before["ci95"]["ece"], False),
                                    with_ci(after["ece"], after["ci95"]["ece"], False)))


if __name__ == "__main__":
    main()
