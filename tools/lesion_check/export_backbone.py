#!/usr/bin/python3
"""Exports the lesion check's backbone: the first 14 stages of the ImageNet-derived MobileNetV2 of
npm's nsfwjs (MIT; Conv1 .. block_12; docs/lesion_check.md), at 112 x 112, as
models/lesion_backbone_mnv2_112.onnx. Its two outputs are the feature maps the check reads:
`block_3` [N, 32, 14, 14] (stride 8) and `block_12` [N, 96, 7, 7] (stride 16).

nsfwjs trained its own task from block_11 on; Conv1 .. block_10 are the frozen ImageNet weights.
The weights come from tools/train/pretrained/run_cpu.sh's first steps (npm ci, dump_nsfwjs.js,
convert_nsfwjs.py), which write WORK/mnv2/mobilenet_v2_nsfwjs.pt:

    /usr/bin/python3 tools/lesion_check/export_backbone.py /work/cache/mnv2/mobilenet_v2_nsfwjs.pt \
        [--out models/lesion_backbone_mnv2_112.onnx] [--compare DIR]

--compare DIR: PyTorch's features of the images in DIR (channel means and stds of both outputs) are
written to --reference, which tests/explain/lesion_check_test.cpp compares Dermal's against.

"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import torch
from PIL import Image
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../train/pretrained"))
from mobilenet_v2 import MobileNetV2  # noqa: E402
from export import fold_pads  # noqa: E402

SIZE = 112
OUTPUTS = {4: "block_3", 13: "block_12"}  # stage index in MobileNetV2.features -> output name

class Backbone(nn.Module):
    def __init__(self, full):
        super().__init__()
        self.stages = nn.Sequential(*list(full.features)[: max(OUTPUTS) + 1])

    def forward(self, x):
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in OUTPUTS:
                outs.append(x)
        return tuple(outs)

def prepare(path):
    """Dermal's preprocessing for the backbone: RGB, bilinear (PIL), stretched to 112 x 112, / 255."""
    im = Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--out", default=os.path.join(HERE, "../../models/lesion_backbone_mnv2_112.onnx"))
    ap.add_argument("--reference", default=os.path.join(HERE, "../../tests/data/explain/lesion_backbone_reference.json"))
    ap.add_argument("--compare", help="a folder of images: write PyTorch's channel means and stds for the test")
    args = ap.parse_args()
    torch.set_num_threads(1)
    full = MobileNetV2()
    state = torch.load(args.weights, map_location="cpu")["state_dict"]
    missing = full.load_state_dict(state, strict=False)
    assert not missing.missing_keys, missing.missing_keys  # only nsfwjs's head may be left over
    backbone = Backbone(full).eval()
    torch.onnx.export(backbone, torch.zeros(1, 3, SIZE, SIZE), args.out, opset_version=13, input_names=["input"],
                      output_names=list(OUTPUTS.values()), training=torch.onnx.TrainingMode.EVAL,
                      do_constant_folding=True)
    fold_pads(args.out, backbone)
    m = onnx.load(args.out)
    m.doc_string = ("Dermal's lesion-check backbone: nsfwjs 4.4.0's MobileNetV2 (MIT license; ImageNet-derived "
                    "weights, Conv1..block_10 frozen ImageNet, block_11..12 fine-tuned by nsfwjs), stages Conv1..block_12, "
                    "input RGB/255 112x112; made by tools/lesion_check/export_backbone.py")
    onnx.checker.check_model(m)
    onnx.save(m, args.out)
    params = sum(p.numel() for p in backbone.parameters())
    print("wrote %s: %d parameters, %d bytes, outputs %s" % (args.out, params, os.path.getsize(args.out),
                                                              ", ".join(OUTPUTS.values())))
    if args.compare:
        names = sorted(f for f in os.listdir(args.compare) if f.lower().endswith((".jpg", ".png")))
        ref = {}
        with torch.no_grad():
            for n in names:
                outs = backbone(prepare(os.path.join(args.compare, n))[None])
                ref[n] = [v for o in outs for v in torch.cat([o.mean((2, 3)), o.std((2, 3))], 1)[0].tolist()]
        path = args.reference
        os.makedirs(os.path.dirname(path), exist_ok=True)
        json.dump({"about": "PyTorch's backbone features (channel means then stds of block_3, then of block_12) of "
                            "each image, PIL bilinear preprocessing; tools/lesion_check/export_backbone.py --compare",
                   "features": ref}, open(path, "w"))
        print("wrote", path, len(ref), "images")

if __name__ == "__main__":
    main()
