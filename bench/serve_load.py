#!/usr/bin/env python3
"""Load test of `dermal serve` (not a unit test): N clients on loopback post real HAM10000 images
to /api/predict with Grad-CAM for a fixed time, bounded in request count too. Reports
throughput, latency p50/p90/p99, status counts and the server's RSS sampled from /proc, and
checks: no 5xx except deliberate 503s, no crash, peak RSS under a bound.

  /usr/bin/python3 bench/serve_load.py                        # 60 s, 8 clients, default model
  /usr/bin/python3 bench/serve_load.py --duration 10 --server-env MAX_QUEUE=2   # see 503s
"""
import argparse
import collections
import json
import sys
import threading
import time

from serve_common import (DEFAULT_BINARY, DEFAULT_IMAGES, OLD_APP, TARGETS, Server, connect, load_images, percentile,
                          predict)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--model", help="model file (default: the bundled one)")
    ap.add_argument("--images", default=str(DEFAULT_IMAGES), help="folder of .jpg files")
    ap.add_argument("--image-count", type=int, default=64, help="distinct images to cycle through")
    ap.add_argument("--duration", type=float, default=60, help="seconds of load")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-requests", type=int, default=100_000, help="stop after this many, whatever the time")
    ap.add_argument("--query", default="gradcam=true", help="/api/predict query string")
    ap.add_argument("--rss-bound-mb", type=float, default=TARGETS["peak_rss_mb"])
    ap.add_argument("--server-env", action="append", default=[], help="KEY=VALUE for the server, e.g. MAX_QUEUE=2")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()

    images = load_images(a.images, a.image_count)
    env = {"LOG_LEVEL": "info"}
    env.update(kv.split("=", 1) for kv in a.server_env)
    args = ["--model", a.model] if a.model else []
    statuses = collections.Counter()
    errors = collections.Counter()
    latencies = []
    retry_after = collections.Counter()
    lock = threading.Lock()
    issued = [0]
    rss_samples = []

    with Server(a.binary, env=env, args=args) as server:
        server.wait_listening()
        # Warm up (the first explanation plans its backward pass), then settle for the idle figure.
        warm = connect(server.port)
        for img in images[:3]:
            predict(warm, img, a.query)
        warm.close()
        time.sleep(0.5)
        idle_rss, _ = server.memory_mb()

        stop_at = time.monotonic() + a.duration
        done = threading.Event()

        def sampler():
            while not done.is_set():
                try:
                    rss_samples.append(server.memory_mb()[0])
                except (OSError, AttributeError):
                    return
                time.sleep(0.05)

        def client(k):
            conn = connect(server.port, timeout=60)
            i = k
            while time.monotonic() < stop_at:
                with lock:
                    if issued[0] >= a.max_requests:
                        return
                    issued[0] += 1
                try:
                    status, secs, headers, _ = predict(conn, images[i % len(images)], a.query)
                except Exception as e:  # a dropped connection counts as an error, then reconnect
                    with lock:
                        errors[type(e).__name__] += 1
                    conn.close()
                    conn = connect(server.port, timeout=60)
                    continue
                i += a.concurrency
                with lock:
                    statuses[status] += 1
                    if status == 200:
                        latencies.append(secs)
                    if status == 503:
                        retry_after[headers.get("Retry-After", "?")] += 1
                if status == 503:  # as a polite client would: wait as told (bounded by the run)
                    time.sleep(min(float(headers.get("Retry-After", "1")), max(0.0, stop_at - time.monotonic())))
            conn.close()

        sampler_thread = threading.Thread(target=sampler, daemon=True)
        sampler_thread.start()
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        done.set()
        sampler_thread.join()
        alive = server.alive()
        _, peak_hwm = server.memory_mb() if alive else (0, 0)
        health = None
        if alive:
            c = connect(server.port)
            c.request("GET", "/health")
            health = c.getresponse().status
            c.close()
        exit_code = server.stop()

    ok = statuses.get(200, 0)
    other_5xx = {s: n for s, n in statuses.items() if s >= 500 and s != 503}
    peak_sampled = max(rss_samples) if rss_samples else 0
    peak = max(peak_sampled, peak_hwm)
    figures = {
        "duration_s": round(elapsed, 1), "concurrency": a.concurrency, "query": a.query,
        "requests": sum(statuses.values()), "statuses": dict(statuses), "errors": dict(errors),
        "throughput_rps": round(ok / elapsed, 2) if elapsed else 0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
        "p90_ms": round(percentile(latencies, 90) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "retry_after": dict(retry_after),
        "idle_rss_mb": round(idle_rss, 1), "peak_rss_sampled_mb": round(peak_sampled, 1),
        "peak_rss_hwm_mb": round(peak_hwm, 1), "server_alive_after": alive, "health_after": health,
        "server_exit_code_on_sigterm": exit_code,
    }
    checks = {
        "no 5xx other than deliberate 503s": not other_5xx,
        "no dropped connections": not errors,
        "no crash (alive, /health 200, clean exit on SIGTERM)": alive and health == 200 and exit_code == 0,
        f"peak RSS <= {a.rss_bound_mb:g} MB": peak <= a.rss_bound_mb,
    }
    print(f"dermal serve under load: {a.concurrency} clients for {elapsed:.1f} s on loopback, "
          f"POST /api/predict?{a.query}, {len(images)} distinct HAM10000 images")
    print(f"  requests   {figures['requests']}  statuses {dict(sorted(statuses.items()))}"
          + (f"  errors {dict(errors)}" if errors else ""))
    if retry_after:
        print(f"  503s with Retry-After: {dict(retry_after)}")
    print(f"  throughput {figures['throughput_rps']} answers/s")
    print(f"  latency    p50 {figures['p50_ms']} ms   p90 {figures['p90_ms']} ms   p99 {figures['p99_ms']} ms "
          f"(client side, includes waiting in the queue)")
    print(f"  RSS        idle {figures['idle_rss_mb']} MB   peak {peak:.1f} MB "
          f"(target <= {TARGETS['peak_rss_mb']} MB; the old app: idle {OLD_APP['idle_rss_mb']} MB, "
          f"peak {OLD_APP['peak_rss_mb']} MB)")
    for name, passed in checks.items():
        print(f"  [{'ok' if passed else 'FAIL'}] {name}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"figures": figures, "checks": checks}, f, indent=2)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
