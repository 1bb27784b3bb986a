#!/usr/bin/python3
"""Write tests/data/cam/cam_reference.json: small activation/gradient pairs and the map each CAM
method gives for them according to cam_methods.py (the papers' formulas). tests/explain/
cam_test.cpp checks explain/cam.cpp against it.

    /usr/bin/python3 tools/reference/make_cam_reference.py [--out tests/data/cam/cam_reference.json]

Each case: A = relu(normal) as after a ReLU layer (two with one channel all zero and one
constant, so the degenerate paths run), G = normal * gradient_scale. Real gradients at the models' CAM layers
are about 1e-4 to 1e-3 per element, so one case uses that scale: a method must not depend on the
gradient's magnitude beyond a common factor. Shapes have odd C, H and W. Values are float32 (the
JSON holds their shortest round-trip text); maps are computed in float64 from those values and
stored raw, H*W row-major, with 10 significant digits.
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import cam_methods  # noqa: E402

SEED = 20240303
CASES = [  # name, (C, H, W), gradient scale, with a dead and a constant channel
    ("odd_13x7x5", (13, 7, 5), 1.0, True),
    ("rgb_3x6x6", (3, 6, 6), 0.3, False),
    ("real_scale_29x9x11", (29, 9, 11), 5e-4, True),
]


def f32_text(values):
    """float32 values as the shortest text that reads back to the same float32."""
    return [float(np.format_float_positional(v, unique=True, trim="-"))
            for v in np.asarray(values, dtype=np.float32).ravel()]


def f64_text(values):
    return [float("%.10g" % v) for v in np.asarray(values, dtype=np.float64).ravel()]


def make_case(rng, name, shape, scale, degenerate):
    c, h, w = shape
    a = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    g = (rng.standard_normal(shape) * scale).astype(np.float32)
    g[0, 0, 0] = 0         # an exact zero gradient (Grad-CAM++ sets alpha = 0 there)
    if degenerate:
        a[1] = 0           # a dead channel: zero sum (XGrad-CAM, Grad-CAM++ divide by it)
        a[c - 1] = 0.75    # a constant channel (Score-CAM skips it; Eigen-CAM centres it away)
    weights = rng.uniform(-0.2, 1.0, c).astype(np.float32)
    # float32 values read back as float64: the C++ test sees exactly these numbers.
    a64, g64 = a.astype(np.float64), g.astype(np.float64)
    maps = {m: fn(a64, g64) for m, fn in cam_methods.GRADIENT_METHODS.items()}
    maps["eigencam"] = cam_methods.eigen_cam(a64)
    maps["weighted"] = cam_methods.weighted_cam(a64, weights.astype(np.float64))
    for m, v in maps.items():
        if np.ptp(v) <= 0:
            raise SystemExit("%s: %s map is constant; pick another seed" % (name, m))
    return {"name": name, "shape": list(shape), "gradient_scale": scale,
            "activation": f32_text(a), "gradient": f32_text(g), "weights": f32_text(weights),
            "maps": {m: f64_text(v) for m, v in maps.items()}}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "data", "cam",
                                                 "cam_reference.json"))
    args = p.parse_args()
    rng = np.random.default_rng(SEED)
    doc = {"generator": "tools/reference/make_cam_reference.py (maps from cam_methods.py)",
           "seed": SEED, "layout": "activation, gradient: [C,H,W] row-major; maps: [H,W] raw",
           "methods": list(cam_methods.GRADIENT_METHODS) + ["eigencam", "weighted"],
           "cases": [make_case(rng, *case) for case in CASES]}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d cases)" % (os.path.normpath(args.out), len(doc["cases"])))


if __name__ == "__main__":
    main()
