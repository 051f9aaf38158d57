"""What the Python checks share: free loopback ports, plain HTTP requests,
waiting for a server to answer, and processes stopped by PID."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 15) -> tuple[int, bytes, dict]:
    """Status, body and headers; an HTTP error status is an answer, not an exception."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def answers(url: str, timeout: float = 60) -> bool:
    """Whether `url` answers (any status) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request("GET", url, timeout=2)
            return True
        except OSError:
            time.sleep(0.1)
    return False


class Procs:
    """Started processes, each in its own session, stopped by PID."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], log: Path, cpu: int | None = None) -> subprocess.Popen:
        pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []
        p = subprocess.Popen(pinned + args, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
