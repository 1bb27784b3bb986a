#!/usr/bin/python3
"""Each member of an ensemble.py network as a model of its own, so that members can be scored
alone, recombined with new candidates (ensemble.py takes these files as --member), and dropped:

    /usr/bin/python3 split_ensemble.py ENSEMBLE.onnx OUT_DIR

Member i is the sub-graph from the ensemble's input to "m<i>/scaled" (its resize and
normalisation included), which is w_i * z_i / T_i. The graph holds only the product w_i / T_i,
so the weights w_i are given (default: equal, ensemble.py's default). Each card keeps the
ensemble's input and preprocessing, with temperature w_i: softmax(output / w_i) is then the member's
own calibrated probabilities, and ensemble.py, which scales each member by weight / temperature,
rebuilds z_i / T_i times the new weight. Grad-CAM's layer is the member's last spatial tensor, as ensemble.py sets it.
"""

import argparse
import json
import os
import sys

import onnx
import onnx.numpy_helper
import onnx.utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ensemble import gap_input  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ensemble")
    ap.add_argument("out")
    ap.add_argument("--weights", default="", help="the ensemble's member weights (default: equal)")
    args = ap.parse_args()
    card = json.load(open(os.path.splitext(args.ensemble)[0] + ".json"))
    model = onnx.load(args.ensemble)
    inits = {i.name: i for i in model.graph.initializer}
    count = sum(1 for name in inits if name.endswith("/coef"))
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0 / count] * count
    assert len(weights) == count, "the ensemble has %d members" % count
    os.makedirs(args.out, exist_ok=True)
    for i, weight in enumerate(weights):
        p = "m%d/" % i
        coef = float(onnx.numpy_helper.to_array(inits[p + "coef"]).reshape(-1)[0])
        path = os.path.join(args.out, "member%d.onnx" % i)
        onnx.utils.extract_model(args.ensemble, path, [model.graph.input[0].name], [p + "scaled"])
        sub = onnx.load(path)
        member_card = {k: v for k, v in card.items() if k in ("labels", "input", "preprocess", "license")}
        member_card.update({"name": "%s_member%d" % (card["name"], i),
                            "description": "Member %d of %s (tools/train/pretrained/split_ensemble.py)." % (i, card["name"]),
                            "explain": {"layer": gap_input(sub.graph)},
                            "temperature": weight})
        member_card["f32_nodes"] = [f for f in card.get("f32_nodes", []) if f.startswith(p)]
        with open(os.path.join(args.out, "member%d.json" % i), "w") as f:
            json.dump(member_card, f, indent=2)
            f.write("\n")
        print("member %d: %s (%.1f MB), its own temperature %.4f, Grad-CAM layer %s"
              % (i, path, os.path.getsize(path) / 1e6, weight / coef, member_card["explain"]["layer"]))


if __name__ == "__main__":
    main()
