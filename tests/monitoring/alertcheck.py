"""Checks of the alert rules beyond promtool: every alert has a severity,
summary, description and a runbook_url pointing at its own section of
docs/operations.md; every selector of the registry rules carries the scope
the operator rewrites per registry."""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCOPE = 'namespace=~".*", job=~".*"'
RUNBOOK = "https://example.invalid/banter-operator/docs/operations.md#"


def anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the headings."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"^#+\s+(.*)$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


def main() -> int:
    problems = []
    sections = anchors((ROOT / "docs/operations.md").read_text())
    seen = 0
    for path in sorted((ROOT / "alerts").glob("*.rules.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert")
                if not name:
                    continue
                seen += 1
                where = f"{path.name}: {name}"
                ann = rule.get("annotations", {})
                for key in ("summary", "description", "runbook_url"):
                    if not ann.get(key):
                        problems.append(f"{where}: no {key}")
                if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                    problems.append(f"{where}: severity must be critical, warning or info")
                url = ann.get("runbook_url", "")
                if url != RUNBOOK + name.lower():
                    problems.append(f"{where}: runbook_url must be {RUNBOOK}{name.lower()}")
                if name.lower() not in sections:
                    problems.append(f"{where}: docs/operations.md has no section #{name.lower()}")
                if path.name == "banter-registry.rules.yml":
                    for sel in re.findall(r"\b([a-z_]+)\{([^}]*)\}", rule["expr"]):
                        if SCOPE not in sel[1]:
                            problems.append(f"{where}: selector {sel[0]}{{{sel[1]}}} lacks the scope {SCOPE}")
                    bare = re.findall(r"\b(banter_registry_[a-z_]+|up)\b(?!\{|_)", rule["expr"])
                    if bare:
                        problems.append(f"{where}: selectors without the scope: {bare}")
    for p in problems:
        print("alertcheck:", p, file=sys.stderr)
    if problems:
        return 1
    print(f"alertcheck: {seen} alerts, each with severity, summary, description and its own runbook section")
    return 0


if __name__ == "__main__":
    sys.exit(main())
