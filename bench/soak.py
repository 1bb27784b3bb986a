#!/usr/bin/env python3
"""Soak test of `dermal serve` as it faces the open internet (not a unit test; issue 15): for
--duration seconds (default 20 minutes), --concurrency clients on loopback mix

  good      real HAM10000 photos to /api/predict (Grad-CAM or not, several methods) and /api/explain
  hostile   truncated and corrupt JPEGs, a PNG declaring 10^10 pixels, a GIF, text, an empty body,
            a body over MAX_UPLOAD_MB
  malformed bad query values, wrong methods, a form without its field, broken OIP JSON, no route
  slow      a request whose headers trickle in over a few seconds (within HEADER_TIMEOUT_S)
  idle      a connection that sends nothing until the server closes it

and records every status per kind, and the server's RSS every 5 s. It fails (exit 1) on any status
outside those expected (200; 4xx for bad input; 408 for the idle client; 429/503 by design), on
RSS drift above --max-drift-mb from minute 2 to the end, if the server died, or if a normal request
at the end is not answered 200.

  /usr/bin/python3 bench/soak.py                         # 20 minutes, concurrency 8
  /usr/bin/python3 bench/soak.py --duration 120 --json soak.json
"""
import argparse
import collections
import json
import random
import socket
import statistics
import struct
import sys
import threading
import time
import zlib

from serve_common import DEFAULT_BINARY, DEFAULT_IMAGES, Server, connect, load_images

ALLOWED = {
    "good": {200, 429, 503},
    "hostile": {400, 413, 422, 429, 503},
    "malformed": {400, 404, 405, 429},
    "slow": {200},
    "idle": {0, 408},  # 0: closed without an answer (keep-alive idle close), 408: header deadline
}


def png_declaring(width, height):
    """A PNG whose IHDR declares width x height (8-bit RGB) and holds one tiny IDAT."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def request(port, method, path, body=b"", headers=None, timeout=120):
    conn = connect(port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        res.read()
        return res.status
    except (ConnectionError, OSError):
        return -1  # reset or refused: counted, and not allowed
    finally:
        conn.close()


def raw_exchange(port, chunks, pause_s, timeout=30):
    """Sends `chunks` with pauses between them on one socket; returns the status the server answers
    (0 when it closes without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for i, c in enumerate(chunks):
            if i:
                time.sleep(pause_s)
            s.sendall(c)
        data = b""
        while b"\r\n" not in data:
            try:
                more = s.recv(4096)
            except OSError:
                return -1
            if not more:
                break
            data += more
    return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--images", default=str(DEFAULT_IMAGES))
    ap.add_argument("--duration", type=float, default=1200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-drift-mb", type=float, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server-env", action="append", default=[], help="KEY=VALUE for the server")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    images = load_images(args.images, 32)
    jpeg = images[0]
    hostile = [jpeg[: len(jpeg) // 2], jpeg[:200] + bytes(random.Random(1).getrandbits(8) for _ in range(5000)),
               png_declaring(100_000, 100_000), b"GIF89a" + b"\0" * 100, b"hello, this is text", b"",
               b"\xff\xd8" + b"\0" * (26 << 20)]
    env = dict(kv.split("=", 1) for kv in args.server_env)
    env.setdefault("LOG_LEVEL", "warn")
    counts = collections.defaultdict(collections.Counter)
    unexpected = []
    lock = threading.Lock()
    rss = []

    with Server(args.binary, env=env) as server:
        server.wait_listening()
        port = server.port
        start = time.monotonic()
        stop = start + args.duration

        def record(kind, status, what):
            with lock:
                counts[kind][status] += 1
                if status not in ALLOWED[kind] and len(unexpected) < 50:
                    unexpected.append({"kind": kind, "what": what, "status": status, "t": round(time.monotonic() - start, 1)})

        def client(seed):
            rng = random.Random(seed)
            while time.monotonic() < stop:
                kind = rng.choices(["good", "hostile", "malformed", "slow", "idle"], [50, 20, 20, 8, 2])[0]
                if kind == "good":
                    method = rng.choice(["gradcam", "gradcam%2B%2B", "layercam", "eigencam"])
                    path = rng.choice(["/api/predict?gradcam=%s&method=%s" % (rng.choice(["true", "false"]), method),
                                       "/api/explain?method=" + method])
                    record(kind, request(port, "POST", path, rng.choice(images), {"Content-Type": "image/jpeg"}), path)
                elif kind == "hostile":
                    body = rng.choice(hostile)
                    record(kind, request(port, "POST", "/api/predict", body, {"Content-Type": "image/jpeg"}),
                           "%d bytes starting %r" % (len(body), body[:8]))
                elif kind == "malformed":
                    case = rng.randrange(6)
                    if case == 0:
                        status = request(port, "POST", "/api/predict?top_k=abc", jpeg, {"Content-Type": "image/jpeg"})
                    elif case == 1:
                        status = request(port, "DELETE", "/api/predict")
                    elif case == 2:
                        status = request(port, "POST", "/api/predict", b"--b\r\nContent-Disposition: form-data; "
                                         b"name=\"other\"\r\n\r\nx\r\n--b--\r\n",
                                         {"Content-Type": "multipart/form-data; boundary=b"})
                    elif case == 3:
                        status = request(port, "POST", "/v2/models/x/infer", b'{"inputs": [', {"Content-Type": "application/json"})
                    elif case == 4:
                        status = request(port, "GET", "/no/such/route")
                    else:
                        status = request(port, "POST", "/api/predict?alpha=7", jpeg, {"Content-Type": "image/jpeg"})
                    record(kind, status, "malformed case %d" % case)
                elif kind == "slow":
                    line = b"GET /health HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
                    pieces = [line[i:i + 6] for i in range(0, len(line), 6)]
                    record(kind, raw_exchange(port, pieces, 3.0 / len(pieces)), "headers over 3 s")
                else:
                    record(kind, raw_exchange(port, [b""], 0, timeout=60), "idle connection")

        def sampler():
            while time.monotonic() < stop:
                if server.alive():
                    rss.append((round(time.monotonic() - start, 1), round(server.memory_mb()[0], 2)))
                time.sleep(5)

        threads = [threading.Thread(target=client, args=(args.seed * 100 + i,)) for i in range(args.concurrency)]
        threads.append(threading.Thread(target=sampler))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alive = server.alive()
        final = request(port, "POST", "/api/predict?gradcam=true", jpeg, {"Content-Type": "image/jpeg"}) if alive else -1
        health = request(port, "GET", "/health") if alive else -1
        log_tail = server.log_text()[-2000:]

    after2 = [m for t, m in rss if t >= 120] or [m for _, m in rss]
    drift = (statistics.median(after2[-6:]) - statistics.median(after2[:6])) if after2 else 0.0
    result = {
        "duration_s": args.duration, "concurrency": args.concurrency,
        "requests": {k: sum(c.values()) for k, c in counts.items()},
        "statuses": {k: {str(s): n for s, n in sorted(c.items())} for k, c in counts.items()},
        "unexpected": unexpected, "rss_mb": rss, "rss_drift_mb_after_minute_2": round(drift, 2),
        "rss_max_mb": max((m for _, m in rss), default=0), "alive": alive, "final_predict": final, "final_health": health,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mb"}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    failures = []
    if unexpected:
        failures.append("%d unexpected statuses" % len(unexpected))
    if abs(drift) > args.max_drift_mb:
        failures.append("RSS drifted %.1f MB after minute 2" % drift)
    if not alive or final != 200 or health != 200:
        failures.append("the server did not answer normally at the end (alive %s, predict %s, health %s)\n%s"
                        % (alive, final, health, log_tail))
    if failures:
        sys.exit("soak: FAIL: " + "; ".join(failures))
    print("soak: PASS")


if __name__ == "__main__":
    main()
