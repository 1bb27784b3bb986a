#!/usr/bin/env python3
"""`dermal serve` side by side with the app it replaces (Django + TensorFlow: idle 285 MB, peak
400 MB, first request 65-70 s, later 8-12 s), on the default model:
  - idle RSS: the server started with the model loaded, before any request, and after some;
  - peak RSS under load: 8 clients posting images with Grad-CAM (VmHWM);
  - process start to the first answered POST /api/predict with Grad-CAM, with PRELOAD_MODEL true
    and false (the client polls from the moment the process is spawned);
  - warm p50: one client, sequential requests with Grad-CAM.

  /usr/bin/python3 bench/serve_startup.py [--runs 5] [--load-seconds 15] [--json out.json]
"""
import argparse
import json
import statistics
import sys
import threading
import time

from serve_common import (DEFAULT_BINARY, DEFAULT_IMAGES, OLD_APP, TARGETS, Server, connect, load_images, percentile,
                          predict)


def first_answer_seconds(binary, args, preload, image):
    """Seconds from spawning the process to a 200 from /api/predict with Grad-CAM."""
    with Server(binary, env={"PRELOAD_MODEL": preload, "LOG_LEVEL": "warn"}, args=args) as server:
        while True:
            if not server.alive():
                raise SystemExit("the server exited:\n" + server.log_text())
            try:
                conn = connect(server.port, timeout=30)
                status, _, _, _ = predict(conn, image, "gradcam=true")
                conn.close()
            except OSError:
                time.sleep(0.001)
                continue
            if status == 200:
                return time.monotonic() - server.started
            raise SystemExit(f"first request answered {status}")


def load(port, images, seconds, concurrency=8):
    stop_at = time.monotonic() + seconds
    counts = [0] * concurrency

    def client(k):
        conn = connect(port)
        i = k
        while time.monotonic() < stop_at:
            status, _, _, _ = predict(conn, images[i % len(images)])
            counts[k] += status == 200
            i += concurrency
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--model", help="model file (default: the bundled one)")
    ap.add_argument("--images", default=str(DEFAULT_IMAGES))
    ap.add_argument("--runs", type=int, default=5, help="cold starts per PRELOAD_MODEL value")
    ap.add_argument("--warm-requests", type=int, default=100)
    ap.add_argument("--load-seconds", type=float, default=15)
    ap.add_argument("--json")
    a = ap.parse_args()
    args = ["--model", a.model] if a.model else []
    images = load_images(a.images, 64)

    first = {}
    for preload in ("true", "false"):
        first[preload] = [first_answer_seconds(a.binary, args, preload, images[0]) for _ in range(a.runs)]

    with Server(a.binary, env={"PRELOAD_MODEL": "true", "LOG_LEVEL": "warn"}, args=args) as server:
        server.wait_listening()
        time.sleep(1.0)
        idle_before, _ = server.memory_mb()
        conn = connect(server.port)
        for img in images[:5]:
            predict(conn, img)
        server_ms, client_ms = [], []
        for i in range(a.warm_requests):
            status, secs, _, body = predict(conn, images[i % len(images)])
            if status != 200:
                raise SystemExit(f"warm request answered {status}: {body[:200]}")
            client_ms.append(secs * 1000)
            server_ms.append(json.loads(body)["timings_ms"]["total"])
        conn.close()
        time.sleep(1.0)
        idle_after, _ = server.memory_mb()
        answered = load(server.port, images, a.load_seconds)
        _, peak = server.memory_mb()
    with Server(a.binary, env={"PRELOAD_MODEL": "false", "LOG_LEVEL": "warn"}, args=args) as lazy:
        lazy.wait_listening()
        time.sleep(1.0)
        idle_lazy, _ = lazy.memory_mb()

    def span(values):
        return f"{statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, {len(values)} runs)"

    warm_p50 = percentile(client_ms, 50)
    figures = {
        "idle_rss_mb_before_requests": round(idle_before, 1), "idle_rss_mb_after_requests": round(idle_after, 1),
        "idle_rss_mb_lazy_unloaded": round(idle_lazy, 1), "peak_rss_mb_under_load": round(peak, 1),
        "load_seconds": a.load_seconds, "load_answers": answered,
        "first_answer_s_preload": first["true"], "first_answer_s_lazy": first["false"],
        "warm_p50_ms_client": round(warm_p50, 2), "warm_p50_ms_server": round(percentile(server_ms, 50), 2),
        "warm_p90_ms_client": round(percentile(client_ms, 90), 2),
    }
    rows = [
        ("idle RSS (model loaded)", f"{OLD_APP['idle_rss_mb']} MB", f"<= {TARGETS['idle_rss_mb']} MB",
         f"{idle_before:.1f} MB before requests, {idle_after:.1f} MB after; {idle_lazy:.1f} MB lazy, unloaded",
         max(idle_before, idle_after) <= TARGETS["idle_rss_mb"]),
        ("peak RSS under load", f"{OLD_APP['peak_rss_mb']} MB", f"<= {TARGETS['peak_rss_mb']} MB",
         f"{peak:.1f} MB ({answered} answers in {a.load_seconds:g} s at concurrency 8)", peak <= TARGETS["peak_rss_mb"]),
        ("start to 1st answer, PRELOAD_MODEL=true", f"{OLD_APP['first_answer_s']} s", f"<= {TARGETS['first_answer_s']} s",
         span(first["true"]), statistics.median(first["true"]) <= TARGETS["first_answer_s"]),
        ("start to 1st answer, PRELOAD_MODEL=false", f"{OLD_APP['first_answer_s']} s", f"<= {TARGETS['first_answer_s']} s",
         span(first["false"]), statistics.median(first["false"]) <= TARGETS["first_answer_s"]),
        ("warm p50, Grad-CAM", "8-12 s", f"<= {TARGETS['warm_p50_ms']} ms",
         f"{warm_p50:.1f} ms round trip (server {percentile(server_ms, 50):.1f} ms), {a.warm_requests} requests",
         warm_p50 <= TARGETS["warm_p50_ms"]),
    ]
    print("dermal serve vs the Django + TensorFlow app, default model, loopback, POST /api/predict with Grad-CAM")
    print(f"  {'':42} {'old app':>10} {'target':>11}  dermal")
    for name, old, target, got, met in rows:
        print(f"  {name:42} {old:>10} {target:>11}  {got}  [{'met' if met else 'MISSED'}]")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
