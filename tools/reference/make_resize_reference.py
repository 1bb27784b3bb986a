#!/usr/bin/python3
"""Writes tests/data/resize/resize_reference.json: Pillow's float resampling of small random
planes, the independent reference for the Resize op's TensorFlow modes with antialias
(tests/engine/resize_test.cpp).

    /usr/bin/python3 tools/reference/make_resize_reference.py

Pillow's Image.resize on mode "F" images is TensorFlow's scale_and_translate with antialias:
half-pixel sample positions, the kernel widened by the shrink factor, taps outside the image
dropped and the weights normalised. Its BILINEAR is the triangle kernel, BICUBIC is Keys with
a = -0.5 (TensorFlow's keyscubic) and LANCZOS is Lanczos-3. On enlargement nothing widens, which
is TensorFlow's lanczos3 and bilinear without antialias too.
"""

import json
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "data", "resize", "resize_reference.json")
FILTERS = {"tf_bilinear": Image.BILINEAR, "tf_bicubic": Image.BICUBIC, "tf_lanczos3": Image.LANCZOS}
# (input h, w) -> (output h, w): shrinking by odd factors, enlarging, and one of each.
CASES = [((13, 11), (5, 4)), ((7, 9), (16, 20)), ((12, 10), (5, 23)), ((9, 9), (9, 9))]


def main():
    rng = np.random.default_rng(17)
    cases = []
    for (h, w), (oh, ow) in CASES:
        plane = rng.uniform(-1, 1, size=(h, w)).astype(np.float32)
        image = Image.fromarray(plane, mode="F")
        for mode, f in FILTERS.items():
            out = np.asarray(image.resize((ow, oh), resample=f), dtype=np.float32)
            cases.append({"mode": mode, "input_shape": [h, w], "output_shape": [oh, ow],
                          "input": plane.ravel().tolist(), "output": out.ravel().tolist()})
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/reference/make_resize_reference.py", "pillow": Image.__version__,
                   "cases": cases}, f)
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
