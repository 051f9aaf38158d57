"""Every PromQL expression of every panel of every dashboard, evaluated by a
real Prometheus that scrapes the real binaries.

Starts redis-server, three registries (SQLite; two Redis replicas sharing one
Redis), the operator (its metrics endpoint runs without a cluster: it points
at an API server that refuses connections) and Prometheus, scraping them with
the target labels a ServiceMonitor produces (namespace, job, pod, service).
Drives traffic touching every route and error class (401, 403, 404, 405, 409,
413, 422, 400, 304, 503 with Redis stopped, a token reload that succeeds and
one that fails), then evaluates each panel query with its dashboard variables
substituted, and fails on an error or an empty result. Also checks that the
pack count shown equals the packs stored, not a multiple of the replicas.

Usage: promquery.py  (binaries from target/debug; prometheus, redis-server on PATH)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
REGISTRY = TARGET / "banter-registry"
OPERATOR = TARGET / "banter-operator"
TOKEN = "promquery-token-0123456789"
NS = "banter"
WINDOW = "30s"  # stands in for $__rate_interval: several 1 s scrapes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def wait_http(url: str, what: str, procs: list, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request("GET", url)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"promquery: {what} did not answer at {url} within {timeout:.0f} s")


class Procs:
    """Started processes, stopped by PID on exit."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        f = open(log, "wb")
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                             start_new_session=True)
        self.procs[name] = p
        return p

    def stop(self, name: str) -> None:
        p = self.procs.pop(name)
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def main() -> int:
    for tool in ("prometheus", "redis-server"):
        if not shutil.which(tool):
            raise SystemExit(f"promquery: {tool} is not installed: run `make deps`")
    for b in (REGISTRY, OPERATOR):
        if not b.exists():
            raise SystemExit(f"promquery: {b} is missing: run `cargo build --workspace`")
    tmp = Path(tempfile.mkdtemp(prefix="promquery-"))
    procs = Procs()
    try:
        return run(tmp, procs)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path, procs: Procs) -> int:
    token_file = tmp / "tokens"
    token_file.write_text(TOKEN + "\n")
    redis_port = free_port()
    redis_args = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(tmp)]
    procs.start("redis", redis_args, tmp / "redis.log")

    registries = {  # pod -> (job, port, args)
        "packs-sqlite-0": ("packs-sqlite", free_port(), ["--backend", "sqlite", "--sqlite-path", str(tmp / "db.sqlite")]),
        "packs-redis-a": ("packs-redis", free_port(), ["--backend", "redis", "--redis-url", f"redis://127.0.0.1:{redis_port}"]),
        "packs-redis-b": ("packs-redis", free_port(), ["--backend", "redis", "--redis-url", f"redis://127.0.0.1:{redis_port}"]),
    }
    for pod, (job, port, args) in registries.items():
        procs.start(pod, [str(REGISTRY), "serve", "--listen", f"127.0.0.1:{port}", "--token-file", str(token_file)] + args,
                    tmp / f"{pod}.log")
    # The operator without a cluster: its client points at a port nobody listens on.
    dead = free_port()
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": f"http://127.0.0.1:{dead}"}}],
        "users": [{"name": "none", "user": {}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none", "namespace": NS}}],
    }))
    op_port = free_port()
    procs.start("operator", [str(OPERATOR), "run", "--metrics-listen", f"127.0.0.1:{op_port}"], tmp / "operator.log",
                env={"KUBECONFIG": str(kubeconfig), "RUST_LOG": "error"})
    for pod, (_, port, _) in registries.items():
        wait_http(f"http://127.0.0.1:{port}/healthz", pod, [])
    wait_http(f"http://127.0.0.1:{op_port}/healthz", "operator", [])

    prom_port = free_port()
    scrape = []
    jobs: dict[str, list] = {}
    for pod, (job, port, _) in registries.items():
        jobs.setdefault(job, []).append({"targets": [f"127.0.0.1:{port}"],
                                         "labels": {"namespace": NS, "pod": pod, "service": job}})
    jobs["banter-operator"] = [{"targets": [f"127.0.0.1:{op_port}"],
                               "labels": {"namespace": "banter-system", "pod": "banter-operator-0",
                                          "service": "banter-operator"}}]
    for job, static in jobs.items():
        scrape.append({"job_name": job, "scrape_interval": "1s", "scrape_timeout": "900ms", "static_configs": static})
    config = tmp / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                  "scrape_configs": scrape}))
    procs.start("prometheus", ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{prom_port}"], tmp / "prometheus.log")
    prom = f"http://127.0.0.1:{prom_port}"
    wait_http(f"{prom}/-/ready", "prometheus", [])

    # Redis away: 503s, storage errors, storage_up 0, connection errors.
    procs.stop("redis")
    for pod, (job, port, _) in registries.items():
        if job == "packs-redis":
            for _ in range(3):
                request("GET", f"http://127.0.0.1:{port}/v1/packs/classic-duo")
            request("GET", f"http://127.0.0.1:{port}/readyz")
    time.sleep(3)
    procs.start("redis", redis_args, tmp / "redis2.log")
    time.sleep(1)
    for pod, (job, port, _) in registries.items():
        wait_ready(f"http://127.0.0.1:{port}/readyz", pod)

    published = {"packs-sqlite": set(), "packs-redis": set()}
    demo = sorted((ROOT / "crates/banter-registry/demo").glob("*.json"))
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for pod, (job, port, _) in registries.items():
        base = f"http://127.0.0.1:{port}"
        for path in demo:
            doc = json.loads(path.read_text())
            name, version = doc["name"], doc["version"]
            status, _, _ = request("PUT", f"{base}/v1/packs/{name}/versions/{version}", path.read_bytes(), auth)
            if status not in (200, 201):
                raise SystemExit(f"promquery: publishing {name}@{version} to {pod} answered {status}")
            published[job].add(name)
            # A conflicting re-publish: same version, other bytes.
            other = dict(doc, description=doc["description"] + " (changed)")
            expect(request("PUT", f"{base}/v1/packs/{name}/versions/{version}", json.dumps(other).encode(), auth), 409)
            status, body, headers = request("GET", f"{base}/v1/packs/{name}/versions/{version}")
            expect((status, body, headers), 200)
            etag = headers.get("ETag") or headers.get("etag")
            expect(request("GET", f"{base}/v1/packs/{name}/versions/{version}", None, {"If-None-Match": etag}), 304)
            digest = headers.get("Digest") or headers.get("digest")
            expect(request("GET", f"{base}/v1/blobs/{digest}"), 200)
            expect(request("GET", f"{base}/v1/packs/{name}"), 200)
            expect(request("PUT", f"{base}/v1/packs/{name}/tags/stable", json.dumps({"version": version}).encode(), auth), 200)
            expect(request("POST", f"{base}/v1/packs/{name}/versions/{version}/yank", None, auth), 200)
            expect(request("DELETE", f"{base}/v1/packs/{name}/versions/{version}/yank", None, auth), 200)
        expect(request("GET", f"{base}/v1/packs?n=10"), 200)
        expect(request("GET", f"{base}/v1/stats"), 200)
        expect(request("GET", f"{base}/v1/schema/pack.json"), 200)
        expect(request("GET", f"{base}/openapi.json"), 200)
        expect(request("PUT", f"{base}/v1/packs/x/versions/1.0.0", b"{}", {"Content-Type": "application/json"}), 401)
        expect(request("PUT", f"{base}/v1/packs/x/versions/1.0.0", b"{}",
                       {"Authorization": "Bearer not-a-known-token-at-all", "Content-Type": "application/json"}), 403)
        expect(request("PUT", f"{base}/v1/packs/x/versions/1.0.0", b"{", auth), 400)
        expect(request("PUT", f"{base}/v1/packs/x/versions/1.0.0", b'{"name": "x"}', auth), 422)
        expect(oversized(port, "/v1/packs/x/versions/1.0.0"), 413)
        expect(request("GET", f"{base}/v1/packs/no-such-pack"), 404)
        expect(request("GET", f"{base}/no/such/route"), 404)
        expect(request("PATCH", f"{base}/v1/stats"), 405)
    # Token reloads: one that works, one that fails (the old tokens stay).
    token_file.write_text(TOKEN + "\n# rotated\n")
    time.sleep(3)
    token_file.write_text("short\n")
    time.sleep(3)
    token_file.write_text(TOKEN + "\n")
    time.sleep(6)  # a few more scrapes of everything

    failures = []
    checked = 0
    for dash in sorted((ROOT / "dashboards").glob("*.json")):
        d = json.loads(dash.read_text())
        registry_dash = dash.name.startswith("banter-registry")
        selections = [(".*", ".*")] + ([(NS, "packs-sqlite"), (NS, "packs-redis")] if registry_dash else [])
        for panel in d["panels"]:
            for t in panel.get("targets", []):
                for ns, job in selections:
                    expr = (t["expr"].replace("$__rate_interval", WINDOW).replace("$namespace", ns)
                            .replace("$job", job))
                    result = query(prom, expr)
                    checked += 1
                    if isinstance(result, str):
                        failures.append(f"{dash.name} / {panel['title']} [{ns}/{job}]: {result}\n    {expr}")
                    elif not result:
                        failures.append(f"{dash.name} / {panel['title']} [{ns}/{job}]: no series\n    {expr}")
    # The pack count shown is the packs stored, not a multiple of the replicas.
    packs_panel = next(p for p in json.loads((ROOT / "dashboards/banter-registry.json").read_text())["panels"]
                       if p["title"] == "Packs")
    for job, names in published.items():
        expr = packs_panel["targets"][0]["expr"].replace("$namespace", NS).replace("$job", job)
        result = query(prom, expr)
        shown = float(result[0]["value"][1]) if isinstance(result, list) and result else None
        if shown != len(names):
            failures.append(f"Packs panel for {job} shows {shown}, {len(names)} are stored")
    for f in failures:
        print("promquery:", f, file=sys.stderr)
    if failures:
        return 1
    print(f"promquery: {checked} panel queries across {len(list((ROOT / 'dashboards').glob('*.json')))} dashboards "
          f"returned data from a real Prometheus; the Packs panel shows {len(published['packs-redis'])} for the "
          f"two-replica Redis registry, as stored")
    return 0


def oversized(port: int, path: str) -> tuple[int, bytes, dict]:
    """A publish announcing 1 GiB: refused from the header, before any body."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest("PUT", path)
    for k, v in {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                 "Content-Length": str(1 << 30)}.items():
        c.putheader(k, v)
    c.endheaders()
    r = c.getresponse()
    answer = (r.status, r.read(), dict(r.headers))
    c.close()
    return answer


def wait_ready(url: str, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if request("GET", url)[0] == 200:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"promquery: {what} not ready at {url} within {timeout:.0f} s")


def expect(answer: tuple[int, bytes, dict], status: int) -> None:
    if answer[0] != status:
        raise SystemExit(f"promquery: expected {status}, got {answer[0]}: {answer[1][:300]!r}")


def query(prom: str, expr: str) -> list | str:
    """The result vector, or the error Prometheus gave."""
    status, body, _ = request("GET", f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    doc = json.loads(body)
    if doc.get("status") != "success":
        return f"{doc.get('errorType')}: {doc.get('error')}"
    return doc["data"]["result"]


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
