"""End to end, side by side in one run: JPEG bytes -> probabilities, and -> probabilities plus a
Grad-CAM overlay PNG, for Dermal (build/bench/dermal_bench_e2e) and the PyTorch pipeline
(bench/e2e_torch.py), on 1 and 2 threads. Prints medians and ratios against the issue's targets:
Dermal at least 3x faster end to end; Grad-CAM adds at most 40% to predict alone.

/usr/bin/python3 bench/e2e.py [--image JPEG] [--iters 30] [--build build]
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=os.path.join(ROOT, "..", "shared", "data", "ham10000", "images", "ISIC_0024306.jpg"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "skinnet_mnv2_ham_isic224.onnx"))
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    binary = os.path.join(a.build, "bench", "dermal_bench_e2e")
    if not os.path.exists(binary):
        sys.exit(f"missing {binary}: cmake --build {a.build} --target dermal_bench_e2e")
    print("| threads | Dermal predict | PyTorch predict | Dermal +Grad-CAM overlay | PyTorch +Grad-CAM overlay | speed-up (overlay) | Grad-CAM overhead (map only) | targets |")
    print("|---|---|---|---|---|---|---|---|")
    for t in (1, 2):
        common = ["--image", a.image, "--model", a.model, "--threads", str(t), "--iters", str(a.iters)]
        d = run([binary] + common)
        p = run(["/usr/bin/python3", os.path.join(ROOT, "bench", "e2e_torch.py")] + common)
        speed = p["predict_gradcam_overlay_ms"] / d["predict_gradcam_overlay_ms"]
        overhead = d["predict_gradcam_ms"] / d["predict_ms"] - 1  # the map, before colouring and PNG encoding
        ok = ("speed ok" if speed >= 3 else "speed MISS") + ", " + ("overhead ok" if overhead <= 0.4 else "overhead MISS")
        print(f"| {t} | {d['predict_ms']:.1f} ms | {p['predict_ms']:.1f} ms | {d['predict_gradcam_overlay_ms']:.1f} ms | "
              f"{p['predict_gradcam_overlay_ms']:.1f} ms | {speed:.1f}x | {100 * overhead:.0f}% | {ok} |")
    print(f"\nload average: {os.getloadavg()[0]:.1f} (medians of {a.iters} runs; other load skews the 2-thread row)")


if __name__ == "__main__":
    main()
