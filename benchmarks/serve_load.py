"""Load test of `emotionkit serve`: throughput and latency under concurrent clients.

    python benchmarks/serve_load.py [--requests 500] [--concurrency 8] [--malformed 20]
        [--url http://127.0.0.1:8000] [--model MODEL.onnx] [--out results.json]

Without --url it starts `emotionkit serve` (the bundled model unless --model) on a free
localhost port and stops it at the end; --url targets a running server, localhost only.
C client threads (one keep-alive connection each) POST tests/data/face_photo.png as a raw
body N times, with M malformed requests shuffled in (text, a truncated PNG, a body over
the upload limit, a GET), which must be answered 4xx. Then /healthz must still answer.
Reports throughput (all requests / wall time), p50/p99 latency of the N valid requests,
and errors: failed connections, valid requests not 200, malformed ones not 4xx.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "face_photo.png"
OVERSIZE_BYTES = 6 * 2**20  # over the default 5 MiB upload limit


@dataclass(frozen=True)
class Job:
    """One request to send; `valid` ones must get 200, the others 4xx."""

    kind: str
    method: str
    body: bytes

    @property
    def valid(self) -> bool:
        return self.kind == "valid"


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: int | None  # None: the connection failed
    seconds: float


def build_jobs(requests: int, malformed: int, photo: bytes, seed: int = 0) -> list[Job]:
    """N valid uploads and M malformed requests (four kinds in turn), shuffled."""
    bad = [
        Job("text", "POST", b"this is not an image"),
        Job("truncated_png", "POST", photo[: len(photo) // 3]),
        Job("oversize", "POST", b"\x00" * OVERSIZE_BYTES),
        Job("wrong_method", "GET", b""),
    ]
    jobs = [Job("valid", "POST", photo)] * requests + [bad[i % len(bad)] for i in range(malformed)]
    random.Random(seed).shuffle(jobs)
    return jobs


def send(connection: http.client.HTTPConnection, job: Job) -> int:
    """Send `job` on `connection`, read the whole answer; the HTTP status."""
    headers = {"Content-Type": "image/png"} if job.method == "POST" else {}
    connection.request(job.method, "/v1/predict", body=job.body or None, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.getheader("connection", "").lower() == "close":
        connection.close()  # the server refused the body unread: http.client reconnects
    return response.status


def client(host: str, port: int, jobs: list[Job], lock: threading.Lock, out: list[Outcome]) -> None:
    """One client thread: take jobs until none are left, one keep-alive connection."""
    connection = http.client.HTTPConnection(host, port, timeout=60)
    while True:
        with lock:
            if not jobs:
                break
            job = jobs.pop()
        started = time.perf_counter()
        try:
            status: int | None = send(connection, job)
        except (OSError, http.client.HTTPException):
            status = None
            connection.close()
        out.append(Outcome(job.kind, status, time.perf_counter() - started))
    connection.close()


def run_load(url: str, jobs: list[Job], concurrency: int) -> tuple[list[Outcome], float]:
    """Send all `jobs` from `concurrency` threads; the outcomes and the wall time."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pending, lock, outcomes = list(jobs), threading.Lock(), list[Outcome]()
    threads = [
        threading.Thread(target=client, args=(host, port, pending, lock, outcomes))
        for _ in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 500 is the 495th value)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def summarize(outcomes: list[Outcome], wall: float, healthy_after: bool) -> dict[str, object]:
    valid = [o for o in outcomes if o.kind == "valid"]
    malformed = [o for o in outcomes if o.kind != "valid"]
    latencies = [o.seconds * 1000 for o in valid if o.status == 200]
    errors = [o for o in valid if o.status != 200]
    errors += [o for o in malformed if o.status is None or not 400 <= o.status < 500]
    return {
        "requests": len(valid),
        "malformed": len(malformed),
        "wall_seconds": round(wall, 3),
        "throughput_rps": round(len(outcomes) / wall, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1) if latencies else None,
            "p99": round(percentile(latencies, 99), 1) if latencies else None,
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
        "errors": len(errors),
        "error_details": sorted({f"{o.kind}: {o.status}" for o in errors}),
        "malformed_statuses": {
            kind: sorted({o.status for o in malformed if o.kind == kind}, key=str)
            for kind in sorted({o.kind for o in malformed})
        },
        "healthy_after": healthy_after,
    }


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_server(model: str | None) -> Iterator[str]:
    """`emotionkit serve` on a free localhost port until the block ends; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "emotionkit", "serve", "--port", str(port)]
    server = subprocess.Popen([*command, *([model] if model else [])], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("emotionkit serve did not start")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(10)


@contextmanager
def server_url(url: str | None, model: str | None) -> Iterator[str]:
    """`url` as given, or a server started for the run."""
    if url:
        yield url
        return
    with local_server(model) as started:
        yield started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--malformed", type=int, default=20)
    parser.add_argument("--url", help="a running server on localhost (default: start one)")
    parser.add_argument("--model", help="model for the started server (default: bundled)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve_load.json")
    args = parser.parse_args()
    if args.url and urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("--url must be a localhost server: this tool only loads your own machine")
    load_before = os.getloadavg()[0]
    jobs = build_jobs(args.requests, args.malformed, PHOTO.read_bytes())
    with server_url(args.url, args.model) as url:
        if not healthy(url):
            sys.exit(f"{url}/healthz does not answer")
        outcomes, wall = run_load(url, jobs, args.concurrency)
        result = summarize(outcomes, wall, healthy(url))
    result |= {
        "concurrency": args.concurrency,
        "image": "tests/data/face_photo.png (480x360 PNG, 1 face), raw body",
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        # Other jobs share this machine's CPUs: the 1-minute load average when the run began.
        "load_average_before": round(load_before, 2),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if result["errors"] or not result["healthy_after"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
