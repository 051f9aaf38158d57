"""`make bench`: the registry's read path side by side with real peers, in
one run, on loopback.

Servers (each pinned to CPU 0 with taskset; wrk pinned to CPU 1):
  banter-registry on SQLite and on Redis (release build; Redis pinned with
  it and counted as server CPU), nginx serving the same bytes as a static
  file, and the CNCF distribution registry (Debian `docker-registry`)
  serving them as a blob.
Cases: a 4 KiB and a 64 KiB pack; exact version, `latest`, blob and
`If-None-Match` -> 304 on the registry; file and 304 on nginx; blob on
distribution. Load: wrk at 64 and 256 connections, each case REPEATS
times, the median reported. Server CPU per request comes from
/proc/<pid>/stat (user + system time of every process of the server).

History: on a fresh registry per backend (durable settings: SQLite
synchronous=FULL, Redis appendfsync always; resolved references not
reused, --resolve-ttl 0s, so every GET resolves in storage), publish
HISTORY distinct versions of one pack with 8 clients (publish throughput),
set HISTORY tags on it (timed), then compare exact-version and tag GETs of
that pack with a pack of one version and one tag.

Fails if any response was not the expected 200/201/304. Writes the table as
CSV and Markdown (docs/performance/), prints it, and stops every server by
PID.

Usage: httpbench.py [--duration S] [--repeats N] [--history N] [--out DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import http.client
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))
import loopback  # noqa: E402
from loopback import Procs, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
REGISTRY = TARGET / "banter-registry"
TOKEN = "bench-token-0123456789abcdef"
TICKS = os.sysconf("SC_CLK_TCK")
CONNECTIONS = (64, 256)
SIZES = {"4KiB": 4 * 1024, "64KiB": 64 * 1024}


class Failed(Exception):
    pass


def wait_http(url: str, what: str, timeout: float = 60) -> None:
    if not loopback.answers(url, timeout):
        raise Failed(f"{what} did not answer at {url}")


def pack_of(name: str, size: int) -> bytes:
    """A valid pack of about `size` bytes (lines of at most 400 characters)."""
    doc = {"name": name, "version": "1.0.0", "title": "Bench",
           "personas": [{"id": "host", "display_name": "Host"}], "lines": []}
    i = 0
    while len(json.dumps(doc)) < size - 500:
        doc["lines"].append({"id": f"l{i}", "event": "match.goal", "persona": "host", "text": "x" * 400})
        i += 1
    pad = size - len(json.dumps(doc)) - len(', "description": ""')
    doc["description"] = "y" * max(pad, 0)
    return json.dumps(doc).encode()


class ServerProcs(Procs):
    """Every server on CPU 0: the load generator has CPU 1 to itself."""

    def start(self, args: list[str], log: Path, cpu: int | None = 0) -> subprocess.Popen:
        return super().start(args, log, cpu)


def tree(pid: int) -> list[int]:
    """`pid` and every descendant (nginx workers)."""
    out = [pid]
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    i = 0
    while i < len(out):
        out.extend(children.get(out[i], []))
        i += 1
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


WRK_LAT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def wrk(url: str, conns: int, seconds: int, headers: list[str], server_pids: list[int]) -> dict:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for h in headers:
        cmd += ["-H", h]
    before = cpu_seconds(server_pids)
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    after = cpu_seconds(server_pids)
    m = re.search(r"(\d+) requests in ([\d.]+)(s|m)", out)
    if not m:
        raise Failed(f"wrk output not understood:\n{out}")
    requests = int(m.group(1))
    elapsed = float(m.group(2)) * (60 if m.group(3) == "m" else 1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or (errors and re.search(r"(read|write|timeout) [1-9]", errors.group(1))):
        raise Failed(f"{url}: unexpected responses or errors:\n{out}")
    lat = {p: float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u] for p, v, u in WRK_LAT.findall(out)}
    return {"rps": requests / elapsed, "cpu_us": (after - before) * 1e6 / max(requests, 1),
            "p50": lat.get("50", float("nan")), "p99": lat.get("99", float("nan"))}


def expect(url: str, status: int, headers: dict | None = None) -> dict:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            got, h = r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        got, h = e.code, dict(e.headers)
    if got != status:
        raise Failed(f"{url}: expected {status}, got {got}")
    return h


def put(url: str, body: bytes, headers: dict) -> int:
    req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Client:
    """One keep-alive HTTP connection per thread (publishing and tagging)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def put(self, path: str, body: bytes, headers: dict) -> int:
        self.conn.request("PUT", path, body=body, headers=headers)
        r = self.conn.getresponse()
        r.read()
        return r.status


def in_parallel(port: int, requests: list[tuple[str, bytes]], headers: dict, expected: int,
                clients: int = 8) -> float:
    """PUTs `requests` with `clients` keep-alive connections; seconds taken.
    Every answer must be `expected`."""
    chunks = [requests[i::clients] for i in range(clients)]

    def run(chunk: list[tuple[str, bytes]]) -> list[int]:
        c = Client(port)
        return [c.put(path, body, headers) for path, body in chunk]

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        statuses = [s for chunk in pool.map(run, chunks) for s in chunk]
    took = time.monotonic() - started
    bad = [s for s in statuses if s != expected]
    if bad:
        raise Failed(f"{len(bad)} of {len(statuses)} PUTs answered {sorted(set(bad))}, not {expected}")
    return took


def small_pack(name: str, version: str) -> bytes:
    return json.dumps({"name": name, "version": version, "title": "History",
                       "personas": [{"id": "host", "display_name": "Host"}],
                       "lines": [{"id": "l0", "event": "match.goal", "persona": "host", "text": "x" * 200}]}).encode()


def history(procs: ServerProcs, tmp: Path, args, rows: list[dict], notes: list[dict]) -> None:
    """Publish throughput, 10,000 tags, and GET cost against history, per backend."""
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    n = args.history
    redis_port = free_port()
    (tmp / "redis-durable").mkdir()
    procs.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp / "redis-durable")],
                tmp / "redis-durable.log")
    redis_proc = procs.procs[-1]
    for backend, extra, durability in (
        ("sqlite", ["--backend", "sqlite", "--sqlite-path", str(tmp / "history" / "registry.db")],
         "SQLite WAL, synchronous=FULL"),
        ("redis", ["--backend", "redis", "--redis-url", f"redis://127.0.0.1:{redis_port}",
                   "--redis-key-prefix", "history:"], "Redis AOF, appendfsync always"),
    ):
        port = free_port()
        p = procs.start([str(REGISTRY), "serve", "--listen", f"127.0.0.1:{port}", "--token-file",
                         str(tmp / "tokens"), "--resolve-ttl", "0s"] + extra, tmp / f"history-{backend}.log")
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", f"registry ({backend}, history)")
        pids = [p.pid] + ([redis_proc.pid] if backend == "redis" else [])
        server = f"banter-registry ({backend})"
        one = [("/v1/packs/one/versions/1.0.0", small_pack("one", "1.0.0"))]
        in_parallel(port, one, auth, 201, clients=1)
        in_parallel(port, [("/v1/packs/one/tags/t1", b'{"version": "1.0.0"}')], auth, 200, clients=1)
        versions = [f"1.{i // 1000}.{i % 1000}" for i in range(n)]
        took = in_parallel(port, [(f"/v1/packs/hist/versions/{v}", small_pack("hist", v)) for v in versions],
                           auth, 201)
        notes.append({"server": server, "what": f"publish {n} distinct versions (8 clients)",
                      "seconds": took, "per_second": n / took, "durability": durability})
        print(f"{server:28} publish {n} versions: {took:.2f} s, {n / took:.0f}/s ({durability})", flush=True)
        tags = [(f"/v1/packs/hist/tags/t{i}", json.dumps({"version": versions[i]}).encode()) for i in range(n)]
        took = in_parallel(port, tags, auth, 200)
        notes.append({"server": server, "what": f"set {n} tags (8 clients)", "seconds": took,
                      "per_second": n / took, "durability": durability})
        print(f"{server:28} set {n} tags: {took:.2f} s, {n / took:.0f}/s", flush=True)
        mid = versions[n // 2]
        for case, url_one, url_hist in (
            ("exact version", f"{base}/v1/packs/one/versions/1.0.0", f"{base}/v1/packs/hist/versions/{mid}"),
            ("tag", f"{base}/v1/packs/one/versions/t1", f"{base}/v1/packs/hist/versions/t{n // 2}"),
            ("latest", f"{base}/v1/packs/one/versions/latest", f"{base}/v1/packs/hist/versions/latest"),
        ):
            for size, url in (("1 version", url_one), (f"{n} versions, {n} tags", url_hist)):
                expect(url, 200)
                runs = [wrk(url, 64, args.duration, [], pids) for _ in range(args.repeats)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append({"server": server, "case": case, "size": size, "connections": 64, **med})
                print(f"{server:28} {case:14} {size:28} {med['rps']:>10.0f} req/s {med['cpu_us']:>8.1f} us/req "
                      f"p50 {med['p50']:.2f} ms p99 {med['p99']:.2f} ms", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--history", type=int, default=10_000)
    ap.add_argument("--only-history", action="store_true", help="skip the peers (a quick look at history costs)")
    ap.add_argument("--skip-history", action="store_true", help="only the read cases next to the peers")
    ap.add_argument("--sizes", default=",".join(SIZES), help="comma-separated pack sizes to run")
    ap.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance"))
    ap.add_argument("--replot", action="store_true", help="only redraw the SVG from the committed CSV")
    args = ap.parse_args()
    if args.replot:
        with open(Path(args.out) / "http-bench.csv") as f:
            plot(list(csv.DictReader(f)), Path(args.out))
        return 0
    for tool in ("nginx", "docker-registry", "wrk", "taskset", "redis-server"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} missing: run mk/deps-bench.sh (make bench does)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench: needs 2 CPUs (server on one, load on the other)")
    tmp = Path(tempfile.mkdtemp(prefix="httpbench-"))
    tmp.chmod(0o755)
    procs = ServerProcs()
    rows: list[dict] = []
    history_rows: list[dict] = []
    notes: list[dict] = []
    try:
        (tmp / "tokens").write_text(TOKEN + "\n")
        if not args.skip_history:
            history(procs, tmp, args, history_rows, notes)
        if args.only_history:
            write_history(history_rows, notes, Path(args.out))
            return 0
        sizes = {label: SIZES[label] for label in args.sizes.split(",")}
        connections = [int(c) for c in args.connections.split(",")]
        packs = {label: pack_of(f"bench-{label.lower()}", size) for label, size in sizes.items()}
        digests = {label: "sha256:" + hashlib.sha256(b).hexdigest() for label, b in packs.items()}
        (tmp / "tokens").write_text(TOKEN + "\n")
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

        # Servers.
        redis_port = free_port()
        procs.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp)], tmp / "redis.log")
        servers: dict[str, tuple[str, list[int]]] = {}
        for backend, extra in {
            "sqlite": ["--backend", "sqlite", "--sqlite-path", str(tmp / "db" / "registry.db")],
            "redis": ["--backend", "redis", "--redis-url", f"redis://127.0.0.1:{redis_port}"],
        }.items():
            port = free_port()
            p = procs.start([str(REGISTRY), "serve", "--listen", f"127.0.0.1:{port}", "--token-file",
                             str(tmp / "tokens")] + extra, tmp / f"registry-{backend}.log")
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/healthz", f"registry ({backend})")
            for label, body in packs.items():
                name = f"bench-{label.lower()}"
                status = put(f"{base}/v1/packs/{name}/versions/1.0.0", body, auth)
                if status not in (200, 201):
                    raise Failed(f"publishing {name} to {backend}: {status}")
            pids = [p.pid] + ([procs.procs[0].pid] if backend == "redis" else [])
            servers[f"banter-registry ({backend})"] = (base, pids)

        www = tmp / "www"
        www.mkdir()
        for label, body in packs.items():
            (www / f"{label}.json").write_bytes(body)
        nginx_port = free_port()
        (tmp / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log {tmp}/nginx-access.log;
  sendfile on;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  server {{ listen 127.0.0.1:{nginx_port}; root {www}; etag on; }}
}}
""")
        ng = procs.start(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], tmp / "nginx.log")
        wait_http(f"http://127.0.0.1:{nginx_port}/", "nginx")
        time.sleep(0.5)
        servers["nginx (static file)"] = (f"http://127.0.0.1:{nginx_port}", tree(ng.pid))

        dist_port = free_port()
        (tmp / "distribution.yml").write_text(f"""
version: 0.1
log: {{ level: error }}
storage: {{ filesystem: {{ rootdirectory: {tmp}/distribution }} }}
http: {{ addr: 127.0.0.1:{dist_port} }}
""")
        dist = procs.start(["docker-registry", "serve", str(tmp / "distribution.yml")], tmp / "distribution.log")
        dist_base = f"http://127.0.0.1:{dist_port}"
        wait_http(f"{dist_base}/v2/", "distribution")
        for label, body in packs.items():
            req = urllib.request.Request(f"{dist_base}/v2/bench/blobs/uploads/", data=b"", method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:
                location = r.headers["Location"]
            sep = "&" if "?" in location else "?"
            url = location if location.startswith("http") else dist_base + location
            req = urllib.request.Request(f"{url}{sep}digest={digests[label]}", data=body, method="PUT",
                                         headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status != 201:
                    raise Failed(f"distribution upload: {r.status}")
        servers["distribution (blob)"] = (dist_base, [dist.pid])

        # Cases: (server, case, size) -> (url, headers, expected status).
        cases = []
        for label in sizes:
            name = f"bench-{label.lower()}"
            for server in ("banter-registry (sqlite)", "banter-registry (redis)"):
                base = servers[server][0]
                etag = f'"{digests[label]}"'
                cases += [
                    (server, "exact version", label, f"{base}/v1/packs/{name}/versions/1.0.0", [], 200),
                    (server, "latest", label, f"{base}/v1/packs/{name}/versions/latest", [], 200),
                    (server, "blob", label, f"{base}/v1/blobs/{digests[label]}", [], 200),
                    (server, "304", label, f"{base}/v1/packs/{name}/versions/1.0.0",
                     [f"If-None-Match: {etag}"], 304),
                ]
            nbase = servers["nginx (static file)"][0]
            etag = expect(f"{nbase}/{label}.json", 200)["ETag"]
            cases += [("nginx (static file)", "file", label, f"{nbase}/{label}.json", [], 200),
                      ("nginx (static file)", "304", label, f"{nbase}/{label}.json",
                       [f"If-None-Match: {etag}"], 304)]
            cases.append(("distribution (blob)", "blob", label,
                          f"{dist_base}/v2/bench/blobs/{digests[label]}", [], 200))

        for server, case, label, url, headers, status in cases:
            expect(url, status, dict(h.split(": ", 1) for h in headers))
            pids = servers[server][1]
            for conns in connections:
                runs = [wrk(url, conns, args.duration, headers, pids) for _ in range(args.repeats)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append({"server": server, "case": case, "size": label, "connections": conns, **med})
                print(f"{server:28} {case:14} {label:6} c={conns:<4} {med['rps']:>10.0f} req/s "
                      f"{med['cpu_us']:>8.1f} us/req p50 {med['p50']:.2f} ms p99 {med['p99']:.2f} ms", flush=True)
    except Failed as e:
        print(f"FAIL [bench]: {e}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    write(rows, Path(args.out))
    if not args.skip_history:
        write_history(history_rows, notes, Path(args.out))
    return 0


def plot(rows: list[dict], out: Path) -> None:
    """An SVG of requests/s and server CPU per request for every server and
    case at 64 connections, one row of bars per case, both sizes."""
    picked = [r for r in rows if int(r["connections"]) == 64]
    if not picked:
        return
    colours = {"banter-registry (sqlite)": "#1f77b4", "banter-registry (redis)": "#d62728",
               "nginx (static file)": "#2ca02c", "distribution (blob)": "#7f7f7f"}
    label_w, bar_h, gap, panel_w = 300, 16, 6, 330
    height = 70 + len(picked) * (bar_h + gap)
    width = label_w + 2 * panel_w + 60
    esc = lambda t: str(t).replace("&", "&amp;").replace("<", "&lt;")
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{label_w}" y="20" font-weight="bold">requests/s (64 connections, higher is better)</text>',
           f'<text x="{label_w + panel_w + 30}" y="20" font-weight="bold">server CPU µs per request '
           f'(log scale, lower is better)</text>']
    max_rps = max(float(r["rps"]) for r in picked)
    cpus = [float(r["cpu_us"]) for r in picked if float(r["cpu_us"]) > 0]
    lo, hi = math.log10(min(cpus) / 2), math.log10(max(cpus) * 1.5)
    for i, r in enumerate(picked):
        y = 40 + i * (bar_h + gap)
        colour = colours.get(r["server"], "#9467bd")
        rps, cpu = float(r["rps"]), float(r["cpu_us"])
        w1 = (panel_w - 60) * rps / max_rps
        w2 = (panel_w - 60) * (math.log10(max(cpu, 1e-9)) - lo) / (hi - lo)
        svg += [f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end">{esc(r["server"])} · {esc(r["case"])} · '
                f'{esc(r["size"])}</text>',
                f'<rect x="{label_w}" y="{y}" width="{w1:.1f}" height="{bar_h}" fill="{colour}"/>',
                f'<text x="{label_w + w1 + 4:.1f}" y="{y + 12}">{rps:,.0f}</text>',
                f'<rect x="{label_w + panel_w + 30}" y="{y}" width="{max(w2, 1):.1f}" height="{bar_h}" fill="{colour}"/>',
                f'<text x="{label_w + panel_w + 34 + max(w2, 1):.1f}" y="{y + 12}">{cpu:,.1f}</text>']
    svg.append("</svg>")
    (out / "http-bench.svg").write_text("\n".join(svg) + "\n")


def write_history(rows: list[dict], notes: list[dict], out: Path) -> None:
    """The history table (GET cost of a 10,000-version pack against a
    one-version pack on the same server) and the write figures."""
    out.mkdir(parents=True, exist_ok=True)
    base = {(r["server"], r["case"]): r for r in rows if r["size"] == "1 version"}
    lines = ["| server | case | pack | req/s | server CPU µs/req | p50 ms | p99 ms | CPU × 1-version pack |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        b = base.get((r["server"], r["case"]))
        ratio = r["cpu_us"] / b["cpu_us"] if b and b["cpu_us"] else float("nan")
        lines.append(f"| {r['server']} | {r['case']} | {r['size']} | {r['rps']:.0f} | {r['cpu_us']:.1f} | "
                     f"{r['p50']:.2f} | {r['p99']:.2f} | {ratio:.2f} |")
    lines += ["", "| server | write | seconds | per second | durability |", "| --- | --- | ---: | ---: | --- |"]
    for n in notes:
        lines.append(f"| {n['server']} | {n['what']} | {n['seconds']:.2f} | {n['per_second']:.0f} | {n['durability']} |")
    (out / "history-bench.md").write_text("\n".join(lines) + "\n")
    with open(out / "history-bench.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["server", "case", "pack", "rps", "cpu_us", "p50", "p99"])
        for r in rows:
            w.writerow([r["server"], r["case"], r["size"], f"{r['rps']:.3f}", f"{r['cpu_us']:.3f}",
                        f"{r['p50']:.3f}", f"{r['p99']:.3f}"])
        w.writerow([])
        w.writerow(["server", "write", "seconds", "per_second", "durability"])
        for n in notes:
            w.writerow([n["server"], n["what"], f"{n['seconds']:.3f}", f"{n['per_second']:.1f}", n["durability"]])
    print("\n".join(lines))


def write(rows: list[dict], out: Path) -> None:
    """CSV and Markdown with CPU ratios to nginx (same size, connections;
    its 304 for 304s, its file otherwise) and to distribution (its blob)."""
    def find(server: str, case: str, size: str, conns: int) -> dict | None:
        return next((r for r in rows if r["server"] == server and r["case"] == case
                     and r["size"] == size and r["connections"] == conns), None)
    for r in rows:
        ng = find("nginx (static file)", "304" if r["case"] == "304" else "file", r["size"], r["connections"])
        ds = find("distribution (blob)", "blob", r["size"], r["connections"])
        r["cpu_vs_nginx"] = r["cpu_us"] / ng["cpu_us"] if ng and ng["cpu_us"] else float("nan")
        r["rps_vs_nginx"] = r["rps"] / ng["rps"] if ng and ng["rps"] else float("nan")
        r["cpu_vs_distribution"] = r["cpu_us"] / ds["cpu_us"] if ds and ds["cpu_us"] else float("nan")
    out.mkdir(parents=True, exist_ok=True)
    keys = ["server", "case", "size", "connections", "rps", "cpu_us", "p50", "p99",
            "cpu_vs_nginx", "rps_vs_nginx", "cpu_vs_distribution"]
    with open(out / "http-bench.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.3f}" if isinstance(r[k], float) else r[k]) for k in keys})
    lines = ["| server | case | size | conns | req/s | server CPU µs/req | p50 ms | p99 ms | CPU × nginx | req/s × nginx | CPU × distribution |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['server']} | {r['case']} | {r['size']} | {r['connections']} | {r['rps']:.0f} | "
                     f"{r['cpu_us']:.1f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_vs_nginx']:.2f} | "
                     f"{r['rps_vs_nginx']:.2f} | {r['cpu_vs_distribution']:.3f} |")
    (out / "http-bench.md").write_text("\n".join(lines) + "\n")
    plot(rows, out)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
