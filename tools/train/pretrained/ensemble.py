#!/usr/bin/python3
"""One ONNX network averaging several classifiers that Dermal can run as one model, each member
keeping its own input size and normalisation:

    /usr/bin/python3 ensemble.py --member A.onnx[=A.json] --member B.onnx[=B.json] [--weights 0.5,0.5] \\
        --name NAME --out DIR [--size 224] [--explain-member 0]

The ensemble takes the members' common preprocessing at --size (bilinear, stretched, RGB, x/255);
inside the graph each member gets its input resized to its own size (antialiased bilinear, PIL's
weights, as two MatMuls) and normalised with its own mean and std. The output is the weighted sum
of the members' temperature-scaled logits z_i / T_i: softmax of that equals the normalised weighted
geometric mean of the members' calibrated probabilities (log-softmax differs from z / T by one
constant per image), so the prior corrections folded into each member's bias carry over. The card
gets temperature 1 here; fit one on validation and set it (export.py's fit_temperature).
Grad-CAM's layer is set to --explain-member's last spatial tensor (the input of its global pool).
"""

import argparse
import json
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def pil_bilinear_weights(src, dst):
    """The dst x src matrix of PIL's antialiased bilinear resize (ImagingResample's triangle filter,
    support scaled by the reduction factor, each row normalised)."""
    scale = src / dst
    fscale = max(scale, 1.0)
    support = 1.0 * fscale
    w = np.zeros((dst, src), np.float64)
    for i in range(dst):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), src)
        k = np.array([max(0.0, 1.0 - abs((j - center + 0.5) / fscale)) for j in range(lo, hi)])
        w[i, lo:hi] = k / k.sum()
    return w.astype(np.float32)


def load_member(arg):
    path, _, card = arg.partition("=")
    card = card or os.path.splitext(path)[0] + ".json"
    return onnx.load(path), json.load(open(card)), path


def gap_input(graph):
    """The tensor the member's GlobalAveragePool (or ReduceMean over H, W) reads: Grad-CAM's layer."""
    for n in graph.node:
        if n.op_type == "GlobalAveragePool":
            return n.input[0]
    raise SystemExit("no GlobalAveragePool in the member: pass the explain layer by hand")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--member", action="append", required=True, help="MODEL.onnx[=CARD.json]")
    ap.add_argument("--weights", default="", help="one per member, summing to 1 (default: equal)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--explain-member", type=int, default=0)
    ap.add_argument("--description", default="")
    args = ap.parse_args()
    members = [load_member(m) for m in args.member]
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0 / len(members)] * len(members)
    assert len(weights) == len(members) and abs(sum(weights) - 1) < 1e-6, "one weight per member, summing to 1"
    assert 0 <= args.explain_member < len(members), "--explain-member must index a member"
    codes = [[l["code"] for l in card["labels"]] for _, card, _ in members]
    assert all(c == codes[0] for c in codes), "the members' classes differ: %s" % codes

    nodes, inits = [], []
    size = args.size
    x = "input"

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    member_logits = []
    for i, (model, card, path) in enumerate(members):
        p = "m%d/" % i
        pre = card["preprocess"]
        assert not pre.get("keep_aspect", False) and pre.get("resize", "bilinear") == "bilinear", \
            "member %s: only stretched bilinear preprocessing can be shared" % path
        assert pre.get("channel_order", "rgb") == "rgb", "member %s: BGR members are not supported" % path
        w, h = card["input"]["width"], card["input"]["height"]
        t = x
        if (w, h) != (size, size):  # x [N,3,S,S] -> [N,3,h,w]: A_h @ x @ A_w^T
            nodes.append(helper.make_node("MatMul", [t, const(p + "resize_w", pil_bilinear_weights(size, w).T)],
                                          [p + "resized_w"]))
            nodes.append(helper.make_node("MatMul", [const(p + "resize_h", pil_bilinear_weights(size, h)),
                                                     p + "resized_w"], [p + "resized"]))
            t = p + "resized"
        # member input = (x * 255 * scale - mean) / std, per channel
        scale = pre.get("scale", 1 / 255.0) * 255.0
        mean = np.array(pre.get("mean", [0, 0, 0]), np.float32).reshape(1, 3, 1, 1)
        std = np.array(pre.get("std", [1, 1, 1]), np.float32).reshape(1, 3, 1, 1)
        if scale != 1.0 or mean.any() or (std != 1).any():
            nodes.append(helper.make_node("Mul", [t, const(p + "norm_scale", scale / std)], [p + "norm_mul"]))
            nodes.append(helper.make_node("Sub", [p + "norm_mul", const(p + "norm_shift", mean / std)],
                                          [p + "normalised"]))
            t = p + "normalised"
        g = model.graph
        rename = {g.input[0].name: t}
        for init in g.initializer:
            rename[init.name] = p + init.name
            init = onnx.TensorProto.FromString(init.SerializeToString())
            init.name = p + init.name
            inits.append(init)
        for n in g.node:
            for o in n.output:
                rename[o] = p + o
        for n in g.node:
            m = onnx.NodeProto.FromString(n.SerializeToString())
            m.name = p + (n.name or n.output[0])
            m.input[:] = [rename.get(v, v) if v else v for v in n.input]
            m.output[:] = [rename[v] for v in n.output]
            nodes.append(m)
        coef = weights[i] / card.get("temperature", 1.0)
        scaled = "logits" if len(members) == 1 else p + "scaled"
        nodes.append(helper.make_node("Mul", [rename[g.output[0].name], const(p + "coef", [coef])], [scaled]))
        member_logits.append(scaled)
        if i == args.explain_member:
            explain_layer = rename[gap_input(g)]
    out = member_logits[0]
    for i, z in enumerate(member_logits[1:], 1):
        nxt = "logits" if i == len(member_logits) - 1 else "sum%d" % i
        nodes.append(helper.make_node("Add", [out, z], [nxt]))
        out = nxt
    graph = helper.make_graph(
        nodes, args.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(codes[0])])], inits)
    opset = max(op.version for m, _, _ in members for op in m.opset_import if op.domain in ("", "ai.onnx"))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="dermal tools/train/pretrained/ensemble.py")
    onnx.checker.check_model(model)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, args.name + ".onnx")
    onnx.save(model, path)
    first = members[0][1]
    card = {
        "name": args.name,
        "description": args.description or "Ensemble of %s (weights %s)." % (
            ", ".join(c["name"] for _, c, _ in members), ", ".join("%.2f" % w for w in weights)),
        "labels": first["labels"],
        "input": {"name": "input", "width": size, "height": size, "layout": "nchw"},
        "preprocess": {"resize": "bilinear", "keep_aspect": False, "scale": 1 / 255.0,
                       "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "channel_order": "rgb"},
        "explain": {"layer": explain_layer},
        "temperature": 1.0,
        "license": " ".join(dict.fromkeys(c.get("license", "") for _, c, _ in members)).strip(),
    }
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print("wrote %s (%.1f MB), Grad-CAM layer %s" % (path, os.path.getsize(path) / 1e6, explain_layer))


if __name__ == "__main__":
    main()
