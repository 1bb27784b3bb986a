#!/usr/bin/env python3
"""How `dermal serve` answers a normal client while slow and idle clients hold connections open
(slowloris; issue 15). Opens --connections connections, each from its own loopback address
(127.0.0.2, 127.0.0.3, ...: all reach the loopback interface on Linux, so a per-address cap does not
help), half trickling a request header a byte every --trickle-s seconds and half sending nothing,
then times /health and /api/predict from 127.0.0.1 --rounds times.

  /usr/bin/python3 bench/slow_clients.py                       # 128 connections, build/dermal
  /usr/bin/python3 bench/slow_clients.py --binary OLD/build/dermal --connections 40
"""
import argparse
import json
import socket
import statistics
import threading
import time

from serve_common import DEFAULT_BINARY, DEFAULT_IMAGES, Server, load_images


def timed(port, method, path, body=b"", timeout=15.0):
    """(status or an error name, seconds) of one request on a fresh connection."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            s.sendall(head + body)
            data = b""
            while b"\r\n" not in data:
                more = s.recv(4096)
                if not more:
                    break
                data += more
        status = int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else "closed"
    except socket.timeout:
        status = "timeout"
    except OSError as e:
        status = type(e).__name__
    return status, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--connections", type=int, default=128)
    ap.add_argument("--trickle-s", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=15.0, help="seconds a normal request may take before it counts as lost")
    args = ap.parse_args()
    jpeg = load_images(DEFAULT_IMAGES, 1)[0]
    with Server(args.binary, env={"LOG_LEVEL": "warn", "THREADS": "1"}) as server:
        server.wait_listening()
        port = server.port
        held = []
        for i in range(args.connections):
            s = socket.socket()
            s.bind((f"127.0.0.{2 + i % 250}", 0))
            s.connect(("127.0.0.1", port))
            held.append(s)
        stop = threading.Event()

        def trickle():
            line = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000
            k = 0
            while not stop.is_set():
                for s in held[::2]:
                    try:
                        s.send(line[k % len(line):k % len(line) + 1])
                    except OSError:
                        pass
                k += 1
                stop.wait(args.trickle_s)

        t = threading.Thread(target=trickle)
        t.start()
        time.sleep(1.0)
        health, predict = [], []
        for _ in range(args.rounds):
            health.append(timed(port, "GET", "/health", timeout=args.timeout))
            predict.append(timed(port, "POST", "/api/predict?gradcam=true", jpeg, timeout=args.timeout))
        stop.set()
        t.join()
        for s in held:
            s.close()
    summary = {
        "binary": args.binary, "connections": args.connections,
        "health": {"statuses": [h[0] for h in health], "median_s": round(statistics.median(h[1] for h in health), 4),
                   "max_s": round(max(h[1] for h in health), 4)},
        "predict": {"statuses": [p[0] for p in predict], "median_s": round(statistics.median(p[1] for p in predict), 4),
                    "max_s": round(max(p[1] for p in predict), 4)},
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
