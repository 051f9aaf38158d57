"""The registry's HTTP contract, checked from outside on both backends.

1. Schema agreement: a corpus of pack documents (numbers written as `5.0`,
   large integers, Unicode edge cases, every constraint of the schema) is
   judged by an independent JSON Schema implementation (python
   `jsonschema`, draft 2020-12, on the published schema) plus the rules the
   schema cannot express (unique ids, persona references, the line-length
   limit), and published to the registry. The registry must accept exactly
   what that judge accepts, and every 422 must name each violation with a
   JSON pointer (non-empty for any document that is a JSON object).
2. Schemathesis against the served `/openapi.json` (at least MIN_CASES
   generated cases per backend, every check): no response >= 500, no status
   the document does not list, no body or header outside its schema.

Usage: contract.py  (target/debug/banter-registry; redis-server and the
.tools venv's `st` from `make deps`)
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Callable

import jsonschema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))
import loopback  # noqa: E402
from loopback import Procs, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
REGISTRY = TARGET / "banter-registry"
SCHEMA = json.loads((ROOT / "crates/banter-pack/schema/pack.schema.json").read_text())
ST = Path(sys.executable).parent / "st"
TOKEN = "contract-token-0123456789abcdef"
MAX_LINE_CHARS = 500  # the registry's default --max-line-chars
MIN_CASES = 2000
EXAMPLES_PER_OPERATION = 150
SEED = 20261203


class Failed(Exception):
    pass


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    status, data, _ = loopback.request(method, url, body, headers)
    return status, data


def wait_http(url: str, what: str, timeout: float = 60) -> None:
    if not loopback.answers(url, timeout):
        raise Failed(f"{what} did not answer at {url} within {timeout:.0f} s")


# ------------------------------------------------------------------ corpus

def base(i: int) -> dict[str, Any]:
    return {
        "name": "corpus",
        "version": f"1.0.{i}",
        "title": "Corpus",
        "personas": [{"id": "host", "display_name": "Host"}, {"id": "cc", "display_name": "Colour"}],
        "lines": [
            {"id": "l1", "event": "match.goal", "persona": "host", "text": "GOAL!"},
            {"id": "l2", "event": "stream.raid", "persona": "cc", "text": "Raid!", "weight": 2, "cooldown_ms": 1000},
        ],
    }


def at(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation setting the JSON pointer `path` (parents must exist)."""
    def mutate(doc: dict) -> None:
        parts = [p for p in path.split("/") if p]
        node: Any = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def drop(path: str) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        parts = [p for p in path.split("/") if p]
        node: Any = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[parts[-1]]
    return mutate


# (label, mutation, raw JSON text override) — the text override writes
# numbers exactly as given (`5.0`, `1e3`, 20-digit integers), which a
# Python float or int would normalise.
MUTATIONS: list[tuple[str, Callable[[dict], None] | None, Callable[[str], str] | None]] = [
    ("valid as it is", None, None),
    ("cooldown_ms 5.0", None, lambda t: t.replace('"cooldown_ms": 1000', '"cooldown_ms": 5.0')),
    ("cooldown_ms 5e3", None, lambda t: t.replace('"cooldown_ms": 1000', '"cooldown_ms": 5e3')),
    ("cooldown_ms 1000.000", None, lambda t: t.replace('"cooldown_ms": 1000', '"cooldown_ms": 1000.000')),
    ("cooldown_ms 5.5", None, lambda t: t.replace('"cooldown_ms": 1000', '"cooldown_ms": 5.5')),
    ("cooldown_ms -1", at("/lines/1/cooldown_ms", -1), None),
    ("cooldown_ms at the maximum", at("/lines/1/cooldown_ms", 86400000), None),
    ("cooldown_ms over the maximum", at("/lines/1/cooldown_ms", 86400001), None),
    ("cooldown_ms 2^64", None, lambda t: t.replace('"cooldown_ms": 1000', '"cooldown_ms": 18446744073709551616')),
    ("cooldown_ms 1e20", None, lambda t: t.replace('"cooldown_ms": 1000', '"cooldown_ms": 1e20')),
    ("cooldown_ms a string", at("/lines/1/cooldown_ms", "1000"), None),
    ("cooldown_ms null", at("/lines/1/cooldown_ms", None), None),
    ("weight 0", at("/lines/1/weight", 0), None),
    ("weight tiny", None, lambda t: t.replace('"weight": 2', '"weight": 1e-300')),
    ("weight 1000", at("/lines/1/weight", 1000), None),
    ("weight 1000.5", at("/lines/1/weight", 1000.5), None),
    ("weight 2.0", None, lambda t: t.replace('"weight": 2', '"weight": 2.0')),
    ("weight a string", at("/lines/1/weight", "2"), None),
    ("name with a unicode letter", at("/name", "p\u00e0ck"), None),
    ("name in fullwidth letters", at("/name", "\uff50ack"), None),
    ("name 63 characters", at("/name", "a" * 63), None),
    ("name 64 characters", at("/name", "a" * 64), None),
    ("name upper case", at("/name", "Corpus"), None),
    ("version with Arabic-Indic digits", at("/version", "\u0661.\u0660.\u0660"), None),
    ("version prerelease", at("/version", "1.0.0-rc.1"), None),
    ("version leading zero", at("/version", "01.0.0"), None),
    ("text emoji", at("/lines/0/text", "\U0001f389 GOAL \U0001f3c6"), None),
    ("text combining marks", at("/lines/0/text", "e\u0301e\u0301"), None),
    ("text 500 astral characters", at("/lines/0/text", "\U0001f600" * MAX_LINE_CHARS), None),
    ("text 501 astral characters", at("/lines/0/text", "\U0001f600" * (MAX_LINE_CHARS + 1)), None),
    ("text with NUL", at("/lines/0/text", "a\u0000b"), None),
    ("text empty", at("/lines/0/text", ""), None),
    ("text right-to-left", at("/lines/0/text", "\u05e9\u05dc\u05d5\u05dd \u200f!"), None),
    ("event without a dot", at("/lines/0/event", "goal"), None),
    ("event upper case", at("/lines/0/event", "Match.Goal"), None),
    ("tags duplicated", at("/tags", ["a", "a"]), None),
    ("tags fine", at("/tags", ["retro", "co-op"]), None),
    ("tags 33", at("/tags", [f"t{i}" for i in range(33)]), None),
    ("tone invalid", at("/tone", "Loud!"), None),
    ("extra property", at("/extra", True), None),
    ("$schema pointer", at("/$schema", "https://banterpacks.io/schema/pack.json"), None),
    ("missing version", drop("/version"), None),
    ("missing line text", drop("/lines/0/text"), None),
    ("personas empty", at("/personas", []), None),
    ("persona extra property", at("/personas/0/voice", "deep"), None),
    ("display_name 64", at("/personas/0/display_name", "x" * 64), None),
    ("display_name 65", at("/personas/0/display_name", "x" * 65), None),
    ("line id repeated", at("/lines/1/id", "l1"), None),
    ("unknown persona", at("/lines/1/persona", "ghost"), None),
    ("persona id repeated", at("/personas/1/id", "host"), None),
    ("lines not an array", at("/lines", {"l1": {}}), None),
]


def judge(doc: Any) -> bool:
    """Independent verdict: the published schema (python jsonschema, draft
    2020-12, ECMA-262 patterns) and the rules the schema cannot express."""
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    if any(True for _ in validator.iter_errors(doc)):
        return False
    persona_ids = [p["id"] for p in doc["personas"]]
    line_ids = [line["id"] for line in doc["lines"]]
    if len(set(persona_ids)) != len(persona_ids) or len(set(line_ids)) != len(line_ids):
        return False
    if any(line["persona"] not in persona_ids for line in doc["lines"]):
        return False
    # The registry's configurable limit, in Unicode scalar values (as JSON
    # Schema's maxLength counts).
    return all(len(line["text"]) <= MAX_LINE_CHARS for line in doc["lines"])


URL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
URL_VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$", re.ASCII)


def check_agreement(base_url: str, backend: str) -> int:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    problems = []
    for i, (label, mutate, raw) in enumerate(MUTATIONS):
        doc = base(i)
        if mutate:
            mutate(doc)
        text = json.dumps(doc, ensure_ascii=False)
        if raw:
            text = raw(text)
            if text == json.dumps(doc, ensure_ascii=False):
                raise Failed(f"corpus {label!r}: the text rewrite matched nothing")
        parsed = json.loads(text)
        verdict = judge(parsed)
        # Publish under the document's own name and version when the URL
        # can carry them, so only the document decides.
        name = doc.get("name") if isinstance(doc.get("name"), str) and URL_NAME.match(doc.get("name", "")) else "corpus"
        version = doc.get("version") if isinstance(doc.get("version"), str) and URL_VERSION.match(doc.get("version", "")) else f"1.0.{i}"
        url = f"{base_url}/v1/packs/{name}/versions/{urllib.request.quote(version)}"
        status, body = request("PUT", url, text.encode(), auth)
        accepted = status in (200, 201)
        if accepted != verdict:
            problems.append(f"{label}: python jsonschema says {'valid' if verdict else 'invalid'}, "
                            f"the registry answered {status} {body[:300]!r}")
            continue
        if not accepted and status == 422:
            errors = json.loads(body).get("errors", [])
            violations = [v for e in errors for v in (e.get("detail") or {}).get("violations", [])]
            if not violations:
                problems.append(f"{label}: 422 without violations: {body[:300]!r}")
            empty = [v for v in violations if not v.get("pointer")]
            if empty and isinstance(parsed, dict):
                problems.append(f"{label}: 422 violations without a JSON pointer: {empty}")
        elif not accepted and status not in (400, 413):
            problems.append(f"{label}: refused with {status}, not 400/413/422: {body[:200]!r}")
    if problems:
        raise Failed(f"[{backend}] registry and python jsonschema disagree:\n  " + "\n  ".join(problems))
    print(f"contract [{backend}]: {len(MUTATIONS)} corpus documents, the registry and python jsonschema "
          f"{importlib.metadata.version('jsonschema')} agree on every one")
    return len(MUTATIONS)


# ------------------------------------------------------------ schemathesis

def run_schemathesis(base_url: str, backend: str, tmp: Path) -> int:
    if not ST.exists():
        raise Failed(f"{ST} missing: run `make deps`")
    report = tmp / f"st-{backend}"
    cmd = [str(ST), "--config-file", str(ROOT / "tests/contract/schemathesis.toml"), "run",
           f"{base_url}/openapi.json", "--checks", "all", "-n", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED),
           "--workers", "2", "-H", f"Authorization: Bearer {TOKEN}", "--report-dir", str(report)]
    # From the temporary directory: schemathesis keeps a cache in its cwd.
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp)
    text = out.stdout + out.stderr
    m = re.search(r"(\d+) generated", text)
    cases = int(m.group(1)) if m else 0
    if out.returncode != 0:
        raise Failed(f"[{backend}] schemathesis failed (exit {out.returncode}):\n{text[-6000:]}")
    if cases < MIN_CASES:
        raise Failed(f"[{backend}] schemathesis generated only {cases} cases (< {MIN_CASES}):\n{text[-3000:]}")
    print(f"contract [{backend}]: schemathesis {cases} cases over every operation, every check: no failure")
    return cases


# --------------------------------------------------------------------- main

def main() -> int:
    if not REGISTRY.exists():
        raise SystemExit(f"contract: {REGISTRY} missing: run `cargo test --workspace --no-run`")
    if not shutil.which("redis-server"):
        raise SystemExit("contract: redis-server is not installed: run `make deps`")
    tmp = Path(tempfile.mkdtemp(prefix="contract-"))
    procs = Procs()
    try:
        token_file = tmp / "tokens"
        token_file.write_text(TOKEN + "\n")
        redis_port = free_port()
        procs.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(tmp)], tmp / "redis.log")
        backends = {
            "sqlite": ["--backend", "sqlite", "--sqlite-path", str(tmp / "db" / "registry.db")],
            "redis": ["--backend", "redis", "--redis-url", f"redis://127.0.0.1:{redis_port}"],
        }
        for backend, args in backends.items():
            port = free_port()
            procs.start([str(REGISTRY), "serve", "--listen", f"127.0.0.1:{port}", "--token-file", str(token_file),
                         "--seed", str(ROOT / "crates/banter-registry/demo"), "--log", "warn"] + args,
                        tmp / f"registry-{backend}.log")
            base_url = f"http://127.0.0.1:{port}"
            wait_http(f"{base_url}/readyz", f"registry ({backend})")
            check_agreement(base_url, backend)
            run_schemathesis(base_url, backend, tmp)
        return 0
    except Failed as e:
        print(f"FAIL [contract]: {e}", file=sys.stderr)
        for log in sorted(tmp.glob("registry-*.log")):
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]),
                  file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
