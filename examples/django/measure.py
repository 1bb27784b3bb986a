#!/usr/bin/env python3
"""Measure the Django example as a server, beside the figures of the app it replaces.

Starts `manage.py runserver --noreload` with PRELOAD_MODEL=true and measures:
  1. seconds from starting the process until POST /api/predict first answers a real image,
  2. the server's resident memory (VmRSS) with the model loaded, after a few idle seconds,
  3. warm request latency with Grad-CAM, p50 and p90 over --requests requests.
Standard library only (urllib, a multipart body built by hand).

    PYTHONPATH=build/python python3 examples/django/measure.py [--json FILE]
"""
import argparse
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_SHARED = Path(os.environ.get("DERMAL_SHARED_DIR") or REPO.parent / "shared")
DEFAULT_IMAGE = DEFAULT_SHARED / "data" / "ham10000" / "images" / "ISIC_0024306.jpg"

# The app Dermal replaces (Django + TensorFlow/Keras), as its issue reports it.
OLD_APP = {"idle_rss_mb": 285, "first_answer_s": [65, 70], "warm_request_s": [8, 12], "in_use_mb": 400}


def multipart(field, filename, data, content_type="image/jpeg"):
    """A multipart/form-data body holding one file; returns (body, Content-Type header)."""
    boundary = "dermal-" + uuid.uuid4().hex
    head = ('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: %s\r\n\r\n'
            % (boundary, field, filename, content_type)).encode()
    return head + data + ("\r\n--%s--\r\n" % boundary).encode(), "multipart/form-data; boundary=" + boundary


def post(url, body, content_type, timeout):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


def get(url):
    with urllib.request.urlopen(url, timeout=30) as res:
        return json.loads(res.read())


def proc_status(pid):
    """VmRSS and VmHWM (peak) of a process in MB, from /proc (Linux)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024  # kB
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    """Nearest-rank percentile: a value that was measured, not interpolated."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def server_env(threads):
    env = dict(os.environ, PRELOAD_MODEL="true", ENABLE_GRADCAM="true", DEBUG="false",
               ALLOWED_HOSTS="127.0.0.1,localhost", PYTHONUNBUFFERED="1")
    if threads is not None:
        env["DERMAL_THREADS"] = str(threads)
    # From a built checkout without the wheel installed: the module in build/python.
    build = REPO / "build" / "python"
    if (build / "dermal").is_dir() and str(build) not in env.get("PYTHONPATH", ""):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(build)) if p)
    return env


def measure(args):
    image = Path(args.image).read_bytes()
    body, content_type = multipart("image", Path(args.image).name, image)
    port = args.port or free_port()
    base = "http://127.0.0.1:%d" % port
    log = open(args.log, "wb") if args.log else subprocess.DEVNULL
    started = time.monotonic()
    command = [sys.executable, str(HERE / "manage.py"), "runserver", "--noreload", "127.0.0.1:%d" % port]
    server = subprocess.Popen(command, cwd=HERE, env=server_env(args.threads), stdout=log, stderr=subprocess.STDOUT)
    try:
        # 1. Until the first answer: Python, Django, dermal and the model loading, then one request.
        while True:
            if server.poll() is not None:
                sys.exit("the server exited with status %d (see --log)" % server.returncode)
            if time.monotonic() - started > args.start_timeout:
                sys.exit("no answer within %d s" % args.start_timeout)
            try:
                sent = time.monotonic()
                first = post(base + "/api/predict", body, content_type, timeout=120)
                break
            except (ConnectionError, urllib.error.URLError) as e:
                if isinstance(e, urllib.error.HTTPError):
                    sys.exit("POST /api/predict: HTTP %d: %s" % (e.code, e.read()[:300]))
                time.sleep(0.1)  # not listening yet
        first_answer_s = time.monotonic() - started
        first_request_s = time.monotonic() - sent
        health = get(base + "/health?verbose=1")

        # 2. Idle memory with the model loaded.
        time.sleep(args.idle)
        idle = proc_status(server.pid)

        # 3. Warm requests with Grad-CAM, one at a time.
        latencies = []
        for _ in range(args.requests):
            sent = time.monotonic()
            r = post(base + "/api/predict", body, content_type, timeout=120)
            latencies.append(time.monotonic() - sent)
            if not (r.get("gradcam") or {}).get("overlay_jpeg"):
                sys.exit("an answer without the Grad-CAM overlay: %s" % json.dumps(r)[:300])
        after = proc_status(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.log:
            log.close()

    return {
        "old_app": OLD_APP,
        "django_example": {
            "first_answer_s": round(first_answer_s, 2),
            "first_request_s": round(first_request_s, 2),
            "model_load_s": health["model"]["load_s"],
            "idle_rss_mb": round(idle["VmRSS"], 1),
            "rss_after_requests_mb": round(after["VmRSS"], 1),
            "peak_rss_mb": round(after["VmHWM"], 1),
            "warm_requests": len(latencies),
            "warm_p50_s": round(statistics.median(latencies), 3),
            "warm_p90_s": round(percentile(latencies, 90), 3),
            "warm_min_s": round(min(latencies), 3),
            "warm_max_s": round(max(latencies), 3),
            "top_class": first["top"][0]["label"],
        },
        "setup": {
            "image": str(args.image), "image_bytes": len(image), "server": "manage.py runserver --noreload",
            "dermal": health["version"], "django": health["django"], "model": health["model"]["name"],
            "threads": health["settings"]["DERMAL_THREADS"], "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "machine": platform.machine(),
        },
    }


def table(m):
    old, new = m["old_app"], m["django_example"]
    rows = [
        ("", "old app (Django + TensorFlow)", "this example (Django + dermal)"),
        ("first answer after start", "%d-%d s" % tuple(old["first_answer_s"]),
         "%.1f s (model loaded in %.1f s)" % (new["first_answer_s"], new["model_load_s"])),
        ("idle RSS, model loaded", "%d MB" % old["idle_rss_mb"], "%.0f MB" % new["idle_rss_mb"]),
        ("RSS in use (peak)", "~%d MB" % old["in_use_mb"], "%.0f MB" % new["peak_rss_mb"]),
        ("request with Grad-CAM", "%d-%d s" % tuple(old["warm_request_s"]),
         "p50 %.2f s, p90 %.2f s (%d requests)" % (new["warm_p50_s"], new["warm_p90_s"], new["warm_requests"])),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    s = m["setup"]
    lines.append("dermal %s, Django %s, model %s, %d CPUs, threads %s, load average %s at the end"
                 % (s["dermal"], s["django"], s["model"], s["cpus"], s["threads"] or "all", s["load_average_at_end"]))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=str(DEFAULT_IMAGE), help="a skin-lesion image (default: %(default)s)")
    p.add_argument("--requests", type=int, default=30, help="warm requests (default: %(default)s)")
    p.add_argument("--idle", type=float, default=5, help="idle seconds before reading the RSS (default: %(default)s)")
    p.add_argument("--threads", type=int, help="DERMAL_THREADS for the server (default: every core)")
    p.add_argument("--port", type=int, default=0, help="default: a free one")
    p.add_argument("--start-timeout", type=float, default=300)
    p.add_argument("--log", help="write the server's output to this file")
    p.add_argument("--json", help="also write the figures to this file as JSON")
    args = p.parse_args()
    if not Path(args.image).is_file():
        sys.exit("no image at %s: pass --image or set DERMAL_SHARED_DIR" % args.image)
    m = measure(args)
    print(table(m))
    if args.json:
        Path(args.json).write_text(json.dumps(m, indent=2) + "\n")


if __name__ == "__main__":
    main()
