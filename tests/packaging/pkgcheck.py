#!/usr/bin/env python3
"""Packaging generators and checks for banter-operator.

Driven by mk/packaging.mk; run with the venv of mk/deps-packaging.sh
(.tools/venv/bin/python), which has kubernetes-validate, jsonschema, PyYAML.

  generate           write every generated file (chart CRD template,
                     kustomize base, docs/crd-reference.md)
  check-generated    fail when a generated file differs from its source
  chart              helm lint --strict; helm template for the values matrix;
                     every object validated with kubernetes-validate --strict
                     for the oldest and newest supported Kubernetes versions;
                     bad values rejected by values.schema.json
  kustomize          kubectl kustomize manifests/operator, validated the same way
  examples           manifests/examples/*.yaml against the CRD's openAPIV3Schema,
                     and through `banter-operator render -f`
  pss                Pod Security Standard "restricted" over the operator pod
                     (chart and kustomize) and every pod the operator creates
  gitops             manifests/gitops/ parse, reference the chart, and the Argo CD
                     Lua health check gives the right answer for sample statuses

Every check prints what it checked and exits non-zero on the first class of
failure, listing every problem found.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "banter-operator"
CRD_SRC = ROOT / "crds" / "banterregistry.yaml"
CHART_CRD = CHART / "templates" / "crds" / "banterregistry.yaml"
RBAC_SRC = CHART / "files" / "rbac-rules.yaml"
KUSTOMIZE = ROOT / "manifests" / "operator"
EXAMPLES = ROOT / "manifests" / "examples"
GITOPS = ROOT / "manifests" / "gitops"
CRD_REF = ROOT / "docs" / "crd-reference.md"

HELM = os.environ.get("HELM", str(ROOT / ".tools" / "bin" / "helm"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")
LUA = os.environ.get("LUA", "lua5.4")
OPERATOR_BIN = os.environ.get(
    "OPERATOR_BIN",
    str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "banter-operator"),
)

# Oldest and newest Kubernetes versions the chart and manifests support
# (docs/install.md). 1.29: CRD validation rules (CEL) with reason/fieldPath
# are GA; 1.35: the API the operator is built against (k8s-openapi v1_35).
K8S_VERSIONS = ["1.29.0", "1.35.0"]

RELEASE = "banter-operator"
RELEASE_NS = "banter-system"
KUSTOMIZE_NS = "banter-system"

# The values matrix: every combination the chart documents.
VALUES_MATRIX: dict[str, list[str]] = {
    "defaults": [],
    "watch-namespaces": ["--set", "watchNamespaces={team-a,team-b}"],
    "monitoring-netpol-pdb": [
        "--set", "serviceMonitor.enabled=true",
        "--set", "serviceMonitor.labels.release=kube-prometheus-stack",
        "--set", "networkPolicy.enabled=true",
        "--set", "podDisruptionBudget.enabled=true",
        "--set", "prometheusRule.enabled=true",
        "--set", "prometheusRule.labels.release=kube-prometheus-stack",
        "--set", "grafanaDashboard.enabled=true",
        "--set", "grafanaDashboard.folder=Banter",
        "--set", "replicaCount=2",
    ],
    "crds-off": ["--set", "crds.install=false"],
    "no-leader-election-custom-images": [
        "--set", "leaderElection.enabled=false",
        "--set", "registryImage=example.invalid/banter-registry:1.2.3",
        "--set", "redisImage=redis:7.4",
    ],
}

# Bad values and the fragment of helm's error that proves the schema (or the
# chart's own guard) rejected them.
BAD_VALUES: dict[str, tuple[list[str], str]] = {
    "wrong type (replicaCount string)": (["--set-string", "replicaCount=two"], "replicaCount"),
    "wrong type (crds.install string)": (["--set-string", "crds.install=yes"], "install"),
    "unknown top-level key": (["--set", "replicas=2"], "replicas"),
    "unknown nested key": (["--set", "image.name=x"], "name"),
    "bad enum (logFormat)": (["--set", "logFormat=xml"], "logFormat"),
    "bad namespace name": (["--set", "watchNamespaces={Team_A}"], "watchNamespaces"),
    "bad interval": (["--set", "serviceMonitor.interval=soon"], "interval"),
    "port out of range": (["--set", "metrics.port=70000"], "port"),
    "two replicas without leader election": (
        ["--set", "replicaCount=2", "--set", "leaderElection.enabled=false"], "enabled"),
}

# Kinds that are custom resources: not in the Kubernetes OpenAPI schemas.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
                ("gateway.networking.k8s.io/v1", "HTTPRoute")}


class Failed(Exception):
    pass


def run(cmd: list[str], *, check: bool = True, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise Failed(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core booleans (only true/false): how the
    operator's serializer (serde_norway) means `yes`, `on`, `no`, `off`."""


Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def yaml11_ambiguities(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where a YAML 1.1 reader (Kubernetes' own sigs.k8s.io/yaml, kubectl,
    helm, PyYAML) reads something else than a YAML 1.2 reader."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in a for p in yaml11_ambiguities(a[k], b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in yaml11_ambiguities(x, y, f"{path}/{i}")]
    return [] if a == b and type(a) is type(b) else [f"{path}: YAML 1.1 reads {a!r}, YAML 1.2 reads {b!r}"]


# Known defects of `banter-operator render` (operator code, outside the
# packaging paths). Each must still be present (strict expected failure): when
# the operator is fixed this check fails until the entry is removed.
KNOWN_RENDER_AMBIGUITIES: set[tuple[str, str, str]] = set()


def render_example(f: Path) -> list[dict[str, Any]]:
    """`banter-operator render -f f`, read as the operator means it (YAML
    1.2); every place a YAML 1.1 reader such as kubectl would read otherwise
    is a failure, unless listed in KNOWN_RENDER_AMBIGUITIES (reported loudly)."""
    text = run([OPERATOR_BIN, "render", "-f", str(f)]).stdout
    docs11 = load_all(text)
    docs12 = [d for d in yaml.load_all(text, Loader=Yaml12Loader) if d]
    found = set()
    for d11, d12 in zip(docs11, docs12):
        for amb in yaml11_ambiguities(d11, d12):
            found.add((f.name, f"{d12['kind']}/{d12['metadata']['name']}", amb))
    known = {k for k in KNOWN_RENDER_AMBIGUITIES if k[0] == f.name}
    if found - known:
        raise Failed(f"render {f.name}: output that kubectl would misread (quote these strings):\n  "
                     + "\n  ".join(" ".join(x[1:]) for x in sorted(found - known)))
    if known - found:
        raise Failed(f"render {f.name}: known defect fixed, remove it from KNOWN_RENDER_AMBIGUITIES: "
                     f"{sorted(known - found)}")
    for k in sorted(known):
        print(f"KNOWN DEFECT (operator render, patch pending): {k[0]} {k[1]} {k[2]}", file=sys.stderr)
    return docs12


def dump_all(docs: Iterable[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(d, sort_keys=False, width=100000) for d in docs)


# ---------------------------------------------------------------- generators

def gen_chart_crd() -> str:
    """The chart's CRD template: crds/banterregistry.yaml, toggled by
    crds.install and annotated helm.sh/resource-policy: keep."""
    src = CRD_SRC.read_text()
    if "{{" in src:
        raise Failed("crds/banterregistry.yaml contains '{{', which Helm would interpret")
    lines = src.splitlines()
    try:
        start = lines.index("apiVersion: apiextensions.k8s.io/v1")
        meta = lines.index("metadata:", start)
    except ValueError as e:
        raise Failed(f"unexpected layout of {CRD_SRC}: {e}") from e
    if not lines[meta + 1].startswith("  name: "):
        raise Failed(f"unexpected layout of {CRD_SRC}: metadata.name must follow metadata:")
    body = lines[start:meta + 2] + [
        "  labels:",
        '    {{- include "banter-operator.labels" . | nindent 4 }}',
        "  annotations:",
        "    banterpacks.io/generated-from: crds/banterregistry.yaml",
        "    {{- if .Values.crds.keep }}",
        "    helm.sh/resource-policy: keep",
        "    {{- end }}",
    ] + lines[meta + 2:]
    name = lines[meta + 1].removeprefix("  name: ").strip()
    return "\n".join(
        ["{{- /* Generated from crds/banterregistry.yaml by `make packaging-generate`; do not edit. */}}",
         # A CRD that exists and belongs to no release of this name (applied
         # from crds/, the kustomize base or another release) is left alone:
         # Helm would refuse to import it and fail the whole install. One this
         # release owns is still upgraded. lookup is empty under helm template.
         f'{{{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" "{name}" }}}}',
         '{{- $owner := dig "metadata" "annotations" "meta.helm.sh/release-name" "" ($crd | default dict) }}',
         '{{- $ownerNs := dig "metadata" "annotations" "meta.helm.sh/release-namespace" "" ($crd | default dict) }}',
         "{{- $foreign := and $crd (or (ne $owner .Release.Name) (ne $ownerNs .Release.Namespace)) }}",
         "{{- if and .Values.crds.install (not $foreign) }}"]
        + body + ["{{- end }}", ""])


def helm_template(args: list[str], *, namespace: str = RELEASE_NS, skip_tests: bool = False) -> str:
    cmd = [HELM, "template", RELEASE, str(CHART), "--namespace", namespace] + args
    if skip_tests:
        cmd.append("--skip-tests")
    return run(cmd).stdout


def gen_kustomize() -> dict[Path, str]:
    """manifests/operator/*: the chart rendered with its defaults, minus Helm's
    own labels and annotations, split per concern. The kustomization and the
    namespace are written by hand."""
    chart_crd = gen_chart_crd()
    if CHART_CRD.read_text() != chart_crd:
        raise Failed(f"{CHART_CRD.relative_to(ROOT)} is stale: run `make packaging-generate` first")
    docs = load_all(helm_template(["--set", "crds.keep=false"], namespace=KUSTOMIZE_NS, skip_tests=True))
    files: dict[str, list[dict[str, Any]]] = {
        "crd.yaml": [], "rbac.yaml": [], "serviceaccount.yaml": [], "deployment.yaml": [], "service.yaml": []}
    for d in docs:
        for meta in [d["metadata"]] + ([d["spec"]["template"]["metadata"]] if d["kind"] == "Deployment" else []):
            labels = meta.get("labels", {})
            labels.pop("helm.sh/chart", None)
            if "app.kubernetes.io/managed-by" in labels:
                labels["app.kubernetes.io/managed-by"] = "kustomize"
            ann = meta.get("annotations")
            if ann is not None:
                for k in [k for k in ann if k.startswith("helm.sh/")]:
                    del ann[k]
        kind = d["kind"]
        name = {"CustomResourceDefinition": "crd.yaml", "ServiceAccount": "serviceaccount.yaml",
                "Deployment": "deployment.yaml", "Service": "service.yaml"}.get(kind)
        if kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            name = "rbac.yaml"
        if name is None:
            raise Failed(f"default chart render has an unexpected {kind}")
        files[name].append(d)
    header = "# Generated from charts/banter-operator by `make packaging-generate`; do not edit.\n"
    return {KUSTOMIZE / n: header + dump_all(ds) for n, ds in files.items()}


def schema_type(s: dict[str, Any]) -> str:
    t = s.get("type")
    if s.get("x-kubernetes-int-or-string"):
        return "integer or string"
    if t == "array":
        return f"array of {schema_type(s.get('items', {}))}"
    if t == "object" and "additionalProperties" in s and "properties" not in s:
        ap = s["additionalProperties"]
        return f"map of {schema_type(ap) if isinstance(ap, dict) else 'any'}"
    if s.get("x-kubernetes-preserve-unknown-fields") and not t:
        return "any"
    return t or "any"


def md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def constraints(s: dict[str, Any], required: bool) -> str:
    out = []
    if required:
        out.append("required")
    if s.get("nullable"):
        out.append("nullable")
    for k, label in (("enum", "one of"), ("minimum", "min"), ("maximum", "max"), ("minLength", "min length"),
                     ("maxLength", "max length"), ("minItems", "min items"), ("maxItems", "max items"),
                     ("pattern", "pattern"), ("format", "format")):
        if k in s:
            v = s[k]
            v = ", ".join(f"`{x}`" for x in v) if isinstance(v, list) else f"`{v}`"
            out.append(f"{label} {v}")
    for rule in s.get("x-kubernetes-validations", []):
        out.append(f"rule: {rule.get('message', rule['rule'])}")
    return "; ".join(out)


def gen_crd_reference() -> str:
    crd = load_all(CRD_SRC.read_text())[0]
    names = crd["spec"]["names"]
    out = [
        "<!-- Generated from crds/banterregistry.yaml by `make packaging-generate`; do not edit. -->",
        f"# {names['kind']} reference",
        "",
        f"Group `{crd['spec']['group']}`, kind `{names['kind']}` (plural `{names['plural']}`, "
        f"short names {', '.join('`%s`' % n for n in names.get('shortNames', []))}), scope {crd['spec']['scope']}.",
        "Every field of the schema, generated from the CRD (the output of `banter-operator crd`).",
        "",
    ]
    for ver in crd["spec"]["versions"]:
        schema = ver["schema"]["openAPIV3Schema"]
        out += [f"## Version `{ver['name']}`"
                + (" (served, storage)" if ver.get("served") and ver.get("storage") else ""), "",
                md(schema.get("description", "")), ""]
        cols = ver.get("additionalPrinterColumns", [])
        if cols:
            out += ["Printer columns (`kubectl get breg`):", "", "| column | JSONPath | type | description |",
                    "| --- | --- | --- | --- |"]
            out += [f"| {c['name']} | `{c['jsonPath']}` | {c['type']} | {md(c.get('description', ''))} |"
                    for c in cols]
            out.append("")
        for top in ("spec", "status"):
            s = schema["properties"].get(top)
            if not s:
                continue
            out += [f"### `{top}`", "", md(s.get("description", "")), ""]
            rows: list[str] = []

            def walk(path: str, node: dict[str, Any], required: bool) -> None:
                default = f"`{json.dumps(node['default'], separators=(',', ':'))}`" if "default" in node else ""
                rows.append(f"| `{path}` | {schema_type(node)} | {default} | {constraints(node, required)} | "
                            f"{md(node.get('description', ''))} |")
                req = set(node.get("required", []))
                for k, child in node.get("properties", {}).items():
                    walk(f"{path}.{k}", child, k in req)
                items = node.get("items")
                if isinstance(items, dict) and items.get("properties"):
                    ireq = set(items.get("required", []))
                    for k, child in items["properties"].items():
                        walk(f"{path}[].{k}", child, k in ireq)
                ap = node.get("additionalProperties")
                if isinstance(ap, dict) and ap.get("properties"):
                    for k, child in ap["properties"].items():
                        walk(f"{path}.*.{k}", child, False)

            walk(top, s, False)
            out += ["| field | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
            out += rows
            out.append("")
    return "\n".join(out)


# Files the chart ships that have their source of truth elsewhere in the
# repository (a chart cannot read files outside its directory).
CHART_COPIES = {
    ROOT / "charts/banter-operator/files/banter-operator-dashboard.json": ROOT / "dashboards/banter-operator.json",
    ROOT / "charts/banter-operator/files/banter-operator.rules.yml": ROOT / "alerts/banter-operator.rules.yml",
}


def generated_files() -> dict[Path, str]:
    files = {CHART_CRD: gen_chart_crd(), CRD_REF: gen_crd_reference()}
    files.update({dest: src.read_text() for dest, src in CHART_COPIES.items()})
    return files


def cmd_generate() -> None:
    for path, text in generated_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    # The kustomize base renders the chart, so it comes after the chart's CRD.
    for path, text in gen_kustomize().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")


def cmd_check_generated() -> None:
    problems = []
    files = generated_files()
    if all(p.exists() and p.read_text() == t for p, t in files.items()):
        files.update(gen_kustomize())
    for path, want in files.items():
        have = path.read_text() if path.exists() else ""
        if have != want:
            diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                                str(path.relative_to(ROOT)), "generated", n=1))
            problems.append(f"{path.relative_to(ROOT)} is stale:\n{diff[:3000]}")
    if problems:
        raise Failed("\n".join(problems) + "\nrun `make packaging-generate` and commit the result")
    print(f"generated files up to date: {len(files)} files")


# ------------------------------------------------------------- validation

def validator_selftest() -> None:
    """kubernetes-validate must reject an unknown field and a wrong type for
    every version we claim, or a green run would prove nothing."""
    base = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
            "spec": {"ports": [{"port": 80}]}}
    for v in K8S_VERSIONS:
        kubernetes_validate.validate(copy.deepcopy(base), v, strict=True)
        for bad in ({"bogusField": 1}, {"ports": [{"port": "eighty"}]}):
            d = copy.deepcopy(base)
            d["spec"].update(bad)
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except kubernetes_validate.ValidationError:
                continue
            raise Failed(f"kubernetes-validate {v} --strict accepted {bad}")


def validate_k8s(docs: list[dict[str, Any]], where: str) -> int:
    """kubernetes-validate, strict, for every supported version; custom kinds
    are checked elsewhere (CRD schema) and only counted here."""
    problems = []
    n = 0
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        ident = f"{where}: {d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if key in CUSTOM_KINDS:
            continue
        for v in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(copy.deepcopy(d), v, strict=True)
                n += 1
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{ident} (k8s {v}): {e.message} at {'/'.join(map(str, e.path))}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(f"{ident} (k8s {v}): no schema: {e}")
    if problems:
        raise Failed("kubernetes-validate failures:\n  " + "\n  ".join(problems))
    return n


def validate_service_monitor(d: dict[str, Any], where: str) -> None:
    """No OpenAPI schema for ServiceMonitor here: check the fields we use."""
    ep = d.get("spec", {}).get("endpoints", [])
    sel = d.get("spec", {}).get("selector", {}).get("matchLabels")
    if not ep or not sel or not all(e.get("port") for e in ep):
        raise Failed(f"{where}: ServiceMonitor without endpoints[].port or selector.matchLabels: {d}")


def validate_http_route(d: dict[str, Any], where: str) -> None:
    """No OpenAPI schema for HTTPRoute here: check the fields we use
    against the Gateway API v1 rules (parentRefs, hostnames, rules)."""
    spec = d.get("spec", {})
    parents = spec.get("parentRefs", [])
    if not parents or not all(isinstance(p.get("name"), str) and p["name"] for p in parents):
        raise Failed(f"{where}: HTTPRoute without parentRefs[].name: {d}")
    host = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    if len(spec.get("hostnames", [])) > 16 or not all(host.match(h) for h in spec.get("hostnames", [])):
        raise Failed(f"{where}: HTTPRoute hostnames invalid: {spec.get('hostnames')}")
    rules = spec.get("rules", [])
    if not rules or len(rules) > 16:
        raise Failed(f"{where}: HTTPRoute needs 1 to 16 rules: {rules}")
    for r in rules:
        for m in r.get("matches", []):
            p = m.get("path", {})
            if p.get("type") != "PathPrefix" or not str(p.get("value", "")).startswith("/"):
                raise Failed(f"{where}: HTTPRoute path match invalid: {m}")
        for b in r.get("backendRefs", []):
            if not b.get("name") or not isinstance(b.get("port"), int) or not 1 <= b["port"] <= 65535:
                raise Failed(f"{where}: HTTPRoute backendRef needs a name and a port: {b}")


def cmd_chart() -> None:
    validator_selftest()
    print(f"kubernetes-validate self-test (rejects unknown fields and wrong types for k8s "
          f"{' and '.join(K8S_VERSIONS)}): ok")
    out = run([HELM, "lint", "--strict", str(CHART)])
    print("helm lint --strict: ok")
    for name, args in VALUES_MATRIX.items():
        # Lint each combination as well: the schema and templates together.
        run([HELM, "lint", "--strict", str(CHART), "--namespace", RELEASE_NS] + args)
        docs = load_all(helm_template(args))
        kinds = sorted({d["kind"] for d in docs})
        for d in docs:
            if (d["apiVersion"], d["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor"):
                validate_service_monitor(d, name)
        n = validate_k8s(docs, f"helm template [{name}]")
        check_matrix_expectations(name, docs)
        print(f"helm template [{name}]: {len(docs)} objects ({', '.join(kinds)}), "
              f"{n} validations against k8s {' and '.join(K8S_VERSIONS)}: ok")
    for name, (args, needle) in BAD_VALUES.items():
        p = run([HELM, "template", RELEASE, str(CHART), "--namespace", RELEASE_NS] + args, check=False)
        if p.returncode == 0:
            raise Failed(f"bad values accepted ({name}): {' '.join(args)}")
        if needle not in p.stderr:
            raise Failed(f"bad values ({name}) failed, but not naming {needle!r}: {p.stderr}")
        print(f"bad values rejected ({name}): {p.stderr.strip().splitlines()[-1][:140]}")
    del out


def kinds_of(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def check_matrix_expectations(name: str, docs: list[dict[str, Any]]) -> None:
    """What each combination must (not) render."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    dep = by_kind["Deployment"][0]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    problems = []
    for var, path in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        if env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != path:
            problems.append(f"{var} must come from the downward API ({path})")
    crds = by_kind.get("CustomResourceDefinition", [])
    if name == "crds-off":
        if crds:
            problems.append("crds.install=false still renders the CRD")
    else:
        if len(crds) != 1:
            problems.append("the CRD is not rendered")
        elif crds[0]["metadata"].get("annotations", {}).get("helm.sh/resource-policy") != "keep":
            problems.append("the CRD lacks helm.sh/resource-policy: keep")
        else:
            src = load_all(CRD_SRC.read_text())[0]
            if crds[0]["spec"] != src["spec"]:
                problems.append("the chart's CRD spec differs from crds/banterregistry.yaml")
    if name == "watch-namespaces":
        if "ClusterRole" in by_kind or "ClusterRoleBinding" in by_kind:
            problems.append("watchNamespaces set, yet a ClusterRole(Binding) is rendered")
        role_ns = sorted(r["metadata"]["namespace"] for r in by_kind.get("Role", [])
                         if not r["metadata"]["name"].endswith("-leader-election"))
        if role_ns != ["team-a", "team-b"]:
            problems.append(f"expected a Role in team-a and team-b, got {role_ns}")
        if [a for a in args if a.startswith("--namespace=")] != ["--namespace=team-a", "--namespace=team-b"]:
            problems.append(f"expected --namespace flags, got {args}")
    else:
        if len(by_kind.get("ClusterRole", [])) != 1:
            problems.append("expected one ClusterRole when watching all namespaces")
        if any(a.startswith("--namespace") for a in args):
            problems.append("--namespace flag while watching all namespaces")
    dashboards = [c for c in by_kind.get("ConfigMap", []) if "banter-operator.json" in c.get("data", {})]
    if name == "monitoring-netpol-pdb":
        for k in ("ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule"):
            if k not in by_kind:
                problems.append(f"{k} not rendered")
        if "PrometheusRule" in by_kind:
            rule = by_kind["PrometheusRule"][0]
            src = yaml.safe_load((ROOT / "alerts/banter-operator.rules.yml").read_text())
            if rule["spec"] != src:
                problems.append("the chart's PrometheusRule differs from alerts/banter-operator.rules.yml")
            if rule["metadata"]["labels"].get("release") != "kube-prometheus-stack":
                problems.append("prometheusRule.labels not applied")
        if len(dashboards) != 1:
            problems.append("the operator dashboard ConfigMap is not rendered")
        else:
            cm = dashboards[0]
            if json.loads(cm["data"]["banter-operator.json"]) != json.loads((ROOT / "dashboards/banter-operator.json").read_text()):
                problems.append("the chart's operator dashboard differs from dashboards/banter-operator.json")
            if cm["metadata"]["labels"].get("grafana_dashboard") != "1":
                problems.append("the dashboard ConfigMap lacks the sidecar label grafana_dashboard=1")
            if cm["metadata"].get("annotations", {}).get("grafana_folder") != "Banter":
                problems.append("grafanaDashboard.folder not applied")
    else:
        for k in ("ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule"):
            if k in by_kind:
                problems.append(f"{k} rendered though not enabled")
        if dashboards:
            problems.append("the operator dashboard rendered though not enabled")
    leader = "--leader-election" in args
    lease_role = any(r["metadata"]["name"].endswith("-leader-election") for r in by_kind.get("Role", []))
    want_leader = name != "no-leader-election-custom-images"
    if leader != want_leader or lease_role != want_leader:
        problems.append(f"leader election flag {leader} / Lease Role {lease_role}, expected {want_leader}")
    if name == "no-leader-election-custom-images":
        for flag in ("--registry-image=example.invalid/banter-registry:1.2.3", "--redis-image=redis:7.4"):
            if flag not in args:
                problems.append(f"missing {flag}")
    for d in docs:
        for r in d.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                if "*" in r.get(field, []):
                    problems.append(f"wildcard in {d['kind']} {d['metadata']['name']}: {r}")
    if problems:
        raise Failed(f"helm template [{name}]:\n  " + "\n  ".join(problems))


def kustomize_docs() -> list[dict[str, Any]]:
    return load_all(run([KUBECTL, "kustomize", str(KUSTOMIZE)]).stdout)


def cmd_kustomize() -> None:
    docs = kustomize_docs()
    kinds = kinds_of(docs)
    need = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
            "ServiceAccount", "Deployment", "Service"}
    missing = need - set(kinds)
    if missing:
        raise Failed(f"kubectl kustomize {KUSTOMIZE.relative_to(ROOT)} lacks {sorted(missing)}")
    for d in docs:
        ns = d["metadata"].get("namespace")
        if d["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding") \
                and ns != KUSTOMIZE_NS:
            raise Failed(f"{d['kind']}/{d['metadata']['name']} not in namespace {KUSTOMIZE_NS}: {ns}")
    n = validate_k8s(docs, "kubectl kustomize")
    # Same RBAC as the chart: one source.
    rules = yaml.safe_load(RBAC_SRC.read_text())
    cr = next(d for d in docs if d["kind"] == "ClusterRole")
    role = next(d for d in docs if d["kind"] == "Role")
    if cr["rules"] != rules["watched"] or role["rules"] != rules["leaderElection"]:
        raise Failed("kustomize RBAC differs from charts/banter-operator/files/rbac-rules.yaml")
    print(f"kubectl kustomize manifests/operator: {len(docs)} objects ({', '.join(kinds)}), "
          f"{n} validations against k8s {' and '.join(K8S_VERSIONS)}, RBAC = rbac-rules.yaml: ok")


# --------------------------------------------------------------- examples

def crd_schema() -> dict[str, Any]:
    crd = load_all(CRD_SRC.read_text())[0]
    ver = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return ver["schema"]["openAPIV3Schema"]


def to_json_schema(s: Any) -> Any:
    """OpenAPI v3 (structural CRD schema) -> JSON Schema: `nullable` becomes a
    null type, objects without `properties` or `additionalProperties` are
    open, objects with `properties` are closed (the API server prunes unknown
    fields; an example relying on one is a mistake), int-or-string accepted."""
    if isinstance(s, list):
        return [to_json_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {k: to_json_schema(v) for k, v in s.items()
           if not k.startswith("x-kubernetes-") and k not in ("nullable",)}
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def example_files() -> list[Path]:
    files = sorted(EXAMPLES.glob("*.yaml"))
    if not files:
        raise Failed(f"no examples in {EXAMPLES}")
    return files


def cmd_examples() -> None:
    schema = to_json_schema(crd_schema())
    # metadata is the API server's; only check what the examples put there.
    schema["properties"]["metadata"] = {"type": "object", "required": ["name"],
                                        "properties": {"name": {"type": "string"},
                                                       "namespace": {"type": "string"}}}
    schema["properties"]["apiVersion"] = {"const": "banterpacks.io/v1alpha1"}
    schema["properties"]["kind"] = {"const": "BanterRegistry"}
    schema.setdefault("required", [])
    schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata", "spec"})
    validator = jsonschema.Draft7Validator(schema)
    # The checker itself must reject what the CRD rejects.
    for bad in ({"spec": {"storage": {"backend": "mysql"}}}, {"spec": {"replicas": "3"}},
                {"spec": {"unknownField": 1}}):
        doc = {"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
               "metadata": {"name": "x"}, **bad}
        if not list(validator.iter_errors(doc)):
            raise Failed(f"CRD schema check accepts an invalid object: {bad}")
    if not Path(OPERATOR_BIN).exists():
        raise Failed(f"{OPERATOR_BIN} missing: build it with `cargo build -p banter-operator`")
    for f in example_files():
        docs = load_all(f.read_text())
        for d in docs:
            if (d.get("apiVersion"), d.get("kind")) != ("banterpacks.io/v1alpha1", "BanterRegistry"):
                raise Failed(f"{f.name}: not a BanterRegistry: {d.get('kind')}")
            errors = sorted(validator.iter_errors(d), key=lambda e: list(e.path))
            if errors:
                raise Failed(f"{f.name} violates the CRD schema:\n  " + "\n  ".join(
                    f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors))
            check_cel(d, f.name)
        rendered = render_example(f)
        if not any(r["kind"] == "Deployment" for r in rendered):
            raise Failed(f"{f.name}: render produced no Deployment")
        builtin = [r for r in rendered if (r["apiVersion"], r["kind"]) not in CUSTOM_KINDS]
        for r in rendered:
            if (r["apiVersion"], r["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor"):
                validate_service_monitor(r, f.name)
            if (r["apiVersion"], r["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute"):
                validate_http_route(r, f.name)
        n = validate_k8s(builtin, f"render {f.name}")
        print(f"{f.relative_to(ROOT)}: valid against the CRD schema; renders {len(rendered)} objects "
              f"({', '.join(kinds_of(rendered))}), {n} validations: ok")


RESERVED_POD_LABELS = {f"app.kubernetes.io/{k}" for k in ("name", "instance", "component", "managed-by", "part-of")}


def check_cel(d: dict[str, Any], where: str) -> None:
    """The CEL rules that constrain a single object (JSON Schema cannot
    express them), restated; defaults as in the CRD. The rules themselves
    are tested with the CEL interpreter in crates/banter-api/tests/schema.rs."""
    spec = d.get("spec", {})
    storage = spec.get("storage", {})
    backend = storage.get("backend", "sqlite")
    redis = storage.get("redis", {})
    service = spec.get("service", {})
    autoscaling = spec.get("autoscaling")
    problems = []
    if backend == "sqlite" and spec.get("replicas", 1) > 1:
        problems.append("sqlite with replicas > 1")
    if backend == "sqlite" and autoscaling and autoscaling.get("enabled", True):
        problems.append("autoscaling with sqlite")
    if autoscaling and autoscaling.get("minReplicas", 2) > autoscaling["maxReplicas"]:
        problems.append("autoscaling.minReplicas > maxReplicas")
    if "external" in redis and ("auth" in redis or "tls" in redis):
        problems.append("redis.external with redis.auth or redis.tls")
    if service.get("loadBalancerSourceRanges") and service.get("type", "ClusterIP") != "LoadBalancer":
        problems.append("loadBalancerSourceRanges without type LoadBalancer")
    if "externalTrafficPolicy" in service and service.get("type", "ClusterIP") == "ClusterIP":
        problems.append("externalTrafficPolicy with type ClusterIP")
    for at, labels in (("spec", spec.get("podLabels", {})), ("spec.storage.redis", redis.get("podLabels", {}))):
        if RESERVED_POD_LABELS & set(labels):
            problems.append(f"{at}.podLabels sets a reserved label")
    if problems:
        raise Failed(f"{where}: rejected by the CRD's CEL rules: {', '.join(problems)}")


# -------------------------------------------------------------------- PSS

ALLOWED_VOLUME_SOURCES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                          "projected", "secret", "image"}


def pod_specs(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind = doc["kind"]
    name = f"{kind}/{doc['metadata']['name']}"
    if kind == "Pod":
        return [(name, doc["spec"])]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [(name, doc["spec"]["template"]["spec"])]
    if kind == "CronJob":
        return [(name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])]
    return []


def pss_violations(spec: dict[str, Any]) -> list[str]:
    """Every rule of the Pod Security Standards "restricted" profile (which
    includes "baseline"), checked explicitly."""
    v = []
    psc = spec.get("securityContext", {}) or {}
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(f):
            v.append(f"{f} is true")
    if psc.get("sysctls"):
        v.append("baseline: no unsafe sysctls allowed (none set by us)")
    if (psc.get("seLinuxOptions") or {}).get("type") not in (None, "", "container_t", "container_init_t",
                                                              "container_kvm_t", "container_engine_t"):
        v.append("SELinux type not allowed")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        v.append("windows hostProcess")
    if psc.get("runAsUser") == 0:
        v.append("pod runAsUser 0")
    if "supplementalGroups" in psc and 0 in psc["supplementalGroups"]:
        pass  # allowed by the profile
    for vol in spec.get("volumes", []) or []:
        sources = set(vol) - {"name"}
        if "hostPath" in sources:
            v.append(f"volume {vol['name']}: hostPath")
        if not sources <= ALLOWED_VOLUME_SOURCES:
            v.append(f"volume {vol['name']}: type {sorted(sources - ALLOWED_VOLUME_SOURCES)} not allowed")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    pod_nonroot = psc.get("runAsNonRoot")
    containers = [("container", c) for c in spec.get("containers", []) or []] + \
                 [("initContainer", c) for c in spec.get("initContainers", []) or []] + \
                 [("ephemeralContainer", c) for c in spec.get("ephemeralContainers", []) or []]
    if not spec.get("containers"):
        v.append("no containers")
    for what, c in containers:
        n = f"{what} {c['name']}"
        sc = c.get("securityContext", {}) or {}
        if sc.get("privileged"):
            v.append(f"{n}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            v.append(f"{n}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities", {}) or {}
        if "ALL" not in (caps.get("drop") or []):
            v.append(f"{n}: capabilities.drop must contain ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            v.append(f"{n}: capabilities.add {sorted(extra)} (only NET_BIND_SERVICE allowed)")
        nonroot = sc.get("runAsNonRoot", pod_nonroot)
        if nonroot is not True:
            v.append(f"{n}: runAsNonRoot must be true (container or pod)")
        if sc.get("runAsUser") == 0:
            v.append(f"{n}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            v.append(f"{n}: seccompProfile.type must be RuntimeDefault or Localhost, got {seccomp}")
        if sc.get("procMount") not in (None, "Default"):
            v.append(f"{n}: procMount {sc['procMount']}")
        if (sc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
            v.append(f"{n}: AppArmor profile not allowed")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            v.append(f"{n}: windows hostProcess")
        for p in c.get("ports", []) or []:
            if p.get("hostPort"):
                v.append(f"{n}: hostPort {p['hostPort']}")
    return v


def pss_selftest() -> None:
    """The checker must flag each violation it claims to check."""
    good = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                             "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "t", "emptyDir": {}}]}
    if pss_violations(good):
        raise Failed(f"PSS checker rejects a compliant pod: {pss_violations(good)}")
    mutations = {
        "hostNetwork": lambda s: s.update(hostNetwork=True),
        "hostPID": lambda s: s.update(hostPID=True),
        "hostIPC": lambda s: s.update(hostIPC=True),
        "hostPath": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "nfs volume": lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "privileged": lambda s: s["containers"][0]["securityContext"].update(privileged=True),
        "escalation": lambda s: s["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        "no drop ALL": lambda s: s["containers"][0]["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
        "add SYS_ADMIN": lambda s: s["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        "root allowed": lambda s: s["securityContext"].pop("runAsNonRoot"),
        "runAsUser 0": lambda s: s["containers"][0]["securityContext"].update(runAsUser=0),
        "seccomp Unconfined": lambda s: s["containers"][0]["securityContext"].update(
            seccompProfile={"type": "Unconfined"}),
        "no seccomp": lambda s: s["securityContext"].pop("seccompProfile"),
        "hostPort": lambda s: s["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
        "procMount": lambda s: s["containers"][0]["securityContext"].update(procMount="Unmasked"),
    }
    for what, mutate in mutations.items():
        bad = copy.deepcopy(good)
        mutate(bad)
        if not pss_violations(bad):
            raise Failed(f"PSS checker misses a violation: {what}")
    ok = copy.deepcopy(good)
    ok["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    if pss_violations(ok):
        raise Failed("PSS checker rejects NET_BIND_SERVICE, which the profile allows")
    print(f"PSS checker self-test: flags all {len(mutations)} violation kinds, accepts compliant pods: ok")


def cmd_pss() -> None:
    pss_selftest()
    sources: list[tuple[str, list[dict[str, Any]]]] = []
    for name, args in VALUES_MATRIX.items():
        sources.append((f"helm template [{name}]", load_all(helm_template(args))))
    sources.append(("kubectl kustomize manifests/operator", kustomize_docs()))
    for f in example_files():
        sources.append((f"banter-operator render -f {f.relative_to(ROOT)}",
                        render_example(f)))
    problems = []
    checked = []
    for where, docs in sources:
        pods = [p for d in docs for p in pod_specs(d)]
        if not pods:
            problems.append(f"{where}: no pod to check")
        for name, spec in pods:
            for v in pss_violations(spec):
                problems.append(f"{where}: {name}: {v}")
            checked.append(f"{where}: {name}")
    if problems:
        raise Failed("Pod Security Standard \"restricted\" violations:\n  " + "\n  ".join(problems))
    for c in checked:
        print(f"PSS restricted ok: {c}")


# ----------------------------------------------------------------- gitops

LUA_CASES = [
    ("no status yet", {}, "Progressing"),
    ("ready", {"status": {"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Available", "message": "1/1 replicas ready"}]}},
     "Healthy"),
    ("progressing", {"status": {"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "False", "reason": "RolloutInProgress", "message": "0/1 replicas run the current configuration"}]}},
     "Progressing"),
    ("admission refused", {"status": {"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "False", "reason": "AdmissionRefused", "message": "PersistentVolumeClaim x: cannot expand"}]}},
     "Degraded"),
    ("apply failed", {"status": {"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "False", "reason": "ApplyFailed", "message": "could not apply Deployment x"}]}},
     "Degraded"),
    ("invalid spec", {"status": {"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "replicas must be 1"}]}},
     "Degraded"),
    ("auth secret missing", {"status": {"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "False", "reason": "PersistentVolumeClaimPending", "message": "x"},
        {"type": "RegistryReady", "status": "False", "reason": "AuthSecretMissing", "message": "no secret"}]}},
     "Degraded"),
    ("stale status", {"status": {"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Available", "message": "old"}]}}, "Progressing"),
    ("monitoring CRD missing but ready", {"status": {"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Available", "message": "ok"},
        {"type": "MonitoringReady", "status": "False", "reason": "ServiceMonitorCRDMissing", "message": "m"}]}},
     "Healthy"),
]

LUA_DRIVER = r"""
-- Minimal JSON decoder for the test objects (objects, arrays, strings, numbers, booleans).
local function decode(s)
  local i = 1
  local function ws() i = s:find("[^ \t\r\n]", i) or #s + 1 end
  local value
  local function str()
    local j = i + 1; local out = {}
    while true do
      local c = s:sub(j, j)
      if c == '"' then i = j + 1; return table.concat(out) end
      if c == "\\" then j = j + 1; c = s:sub(j, j) end
      out[#out + 1] = c; j = j + 1
    end
  end
  function value()
    ws()
    local c = s:sub(i, i)
    if c == "{" then
      local t = {}; i = i + 1; ws()
      if s:sub(i, i) == "}" then i = i + 1; return t end
      while true do
        ws(); local k = str(); ws(); i = i + 1
        t[k] = value(); ws()
        local d = s:sub(i, i); i = i + 1
        if d == "}" then return t end
      end
    elseif c == "[" then
      local t = {}; i = i + 1; ws()
      if s:sub(i, i) == "]" then i = i + 1; return t end
      while true do
        t[#t + 1] = value(); ws()
        local d = s:sub(i, i); i = i + 1
        if d == "]" then return t end
      end
    elseif c == '"' then return str()
    elseif s:sub(i, i + 3) == "true" then i = i + 4; return true
    elseif s:sub(i, i + 4) == "false" then i = i + 5; return false
    else
      local n = s:match("^-?[0-9.eE+-]+", i); i = i + #n; return tonumber(n)
    end
  end
  return value()
end
local f = assert(io.open(arg[1])); local script = f:read("a"); f:close()
local g = assert(io.open(arg[2])); obj = decode(g:read("a")); g:close()
local hs = assert(load(script, "health.lua", "t", setmetatable({obj = obj}, {__index = _G})))()
io.write(hs.status, "\t", hs.message or "", "\n")
"""


def cmd_gitops() -> None:
    docs = {}
    for f in sorted(GITOPS.glob("*.yaml")):
        for d in load_all(f.read_text()):
            docs[(d["kind"], d["metadata"]["name"])] = (f.name, d)
    kinds = {k for k, _ in docs}
    for need in ("Application", "HelmRelease", "HelmRepository", "ConfigMap"):
        if need not in kinds:
            raise Failed(f"manifests/gitops lacks a {need}")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    installs_chart = False
    for (kind, name), (f, d) in docs.items():
        if kind == "Application":
            src = d["spec"]["source"]
            if src.get("chart") == chart["name"] or src.get("path") == "charts/banter-operator":
                installs_chart = True
            elif not src.get("path") or not (ROOT / src["path"]).is_dir():
                raise Failed(f"{f}: Application {name} neither installs the chart nor a path of this repository")
            opts = d["spec"].get("syncPolicy", {}).get("syncOptions", [])
            if "ServerSideApply=true" not in opts:
                raise Failed(f"{f}: the CRD is too large for client-side apply; ServerSideApply=true is needed")
        if kind == "HelmRelease":
            spec = d["spec"]["chart"]["spec"]
            if spec["chart"] != chart["name"]:
                raise Failed(f"{f}: HelmRelease does not install {chart['name']}")
        if kind == "ConfigMap" and name == "argocd-cm":
            key = "resource.customizations.health.banterpacks.io_BanterRegistry"
            script = d["data"].get(key)
            if not script:
                raise Failed(f"{f}: argocd-cm lacks {key}")
            lua_file = GITOPS / "banterregistry-health.lua"
            if script.strip() != lua_file.read_text().strip():
                raise Failed(f"{f}: the health check differs from {lua_file.name}")
    builtin = [d for _, d in docs.values() if d["apiVersion"] == "v1"]
    validate_k8s(builtin, "manifests/gitops")
    if not installs_chart:
        raise Failed("no Argo CD Application installs the chart")
    lua_file = GITOPS / "banterregistry-health.lua"
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "driver.lua"
        driver.write_text(LUA_DRIVER)
        for what, obj, want in LUA_CASES:
            objf = Path(tmp) / "obj.json"
            obj = {"apiVersion": "banterpacks.io/v1alpha1", "kind": "BanterRegistry",
                   "metadata": {"name": "packs", "generation": 2}, **obj}
            objf.write_text(json.dumps(obj))
            out = run([LUA, str(driver), str(lua_file), str(objf)]).stdout.strip()
            status = out.split("\t")[0]
            if status != want:
                raise Failed(f"Lua health check, {what}: got {out!r}, want {want}")
            print(f"Argo CD health ({what}): {out}: ok")
    print(f"manifests/gitops: {len(docs)} objects ({', '.join(sorted(kinds))}): ok")


COMMANDS = {
    "generate": cmd_generate,
    "check-generated": cmd_check_generated,
    "chart": cmd_chart,
    "kustomize": cmd_kustomize,
    "examples": cmd_examples,
    "pss": cmd_pss,
    "gitops": cmd_gitops,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"usage: {argv[0]} {{{'|'.join(COMMANDS)}}}", file=sys.stderr)
        return 2
    try:
        COMMANDS[argv[1]]()
    except Failed as e:
        print(f"FAIL [{argv[1]}]: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
