"""What bench/serve_load.py and bench/serve_startup.py share: start `dermal serve` on loopback,
read its memory from /proc, send images, summarise latencies. Python standard library only."""
import http.client
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = ROOT / "build" / "dermal"
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "ham10000" / "images"

# The Django + TensorFlow app Dermal replaces, as measured on its host, and this targets.
OLD_APP = {"idle_rss_mb": 285, "peak_rss_mb": 400, "first_answer_s": "65-70", "warm_ms": "8000-12000"}
TARGETS = {"idle_rss_mb": 64, "peak_rss_mb": 128, "first_answer_s": 0.5, "warm_p50_ms": 30}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_images(folder, count):
    """The first `count` JPEGs of the folder (sorted), as bytes: several real images, so that the
    server decodes different files, all kept in memory before timing starts."""
    files = sorted(Path(folder).glob("*.jpg"))[:count]
    if not files:
        raise SystemExit(f"no .jpg images in {folder}")
    return [f.read_bytes() for f in files]


class Server:
    """`dermal serve` on 127.0.0.1, its log in a temporary file (a pipe nobody reads would
    block it). Use as a context manager; stop() sends SIGTERM and waits."""

    def __init__(self, binary, port=None, env=None, args=()):
        self.port = port or free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="dermal_serve_", suffix=".log", delete=False)
        full_env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
        full_env["RATE_LIMIT_PER_S"] = "0"  # a benchmark is one address sending as fast as it can
        full_env.update(env or {})
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(binary), "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=full_env)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def alive(self):
        return self.proc.poll() is None

    def wait_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise SystemExit("the server exited:\n" + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.002)
        raise SystemExit("the server did not start listening:\n" + self.log_text())

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self):
        return Path(self.log.name).read_text(errors="replace")

    def memory_mb(self):
        """(rss, peak rss) in MB from /proc/PID/status (VmRSS, VmHWM)."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024
        hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024
        return rss, hwm


def predict(conn, image, query="gradcam=true"):
    """One POST /api/predict with the raw image; returns (status, seconds, headers, body)."""
    start = time.monotonic()
    conn.request("POST", "/api/predict?" + query, body=image, headers={"Content-Type": "image/jpeg"})
    res = conn.getresponse()
    body = res.read()
    return res.status, time.monotonic() - start, dict(res.getheaders()), body


def connect(port, timeout=60):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(q / 100 * len(v) + 0.5)) - 1))
    return v[k]
