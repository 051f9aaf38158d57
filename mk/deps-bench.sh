#!/usr/bin/env bash
# Installs the peers `make bench` compares against, from Debian packages,
# when missing: nginx (static files), docker-registry (the CNCF distribution
# registry) and wrk (the load generator). Their packaged services are
# stopped: the benchmark starts its own on free loopback ports.
set -euo pipefail

need_apt=()
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps-bench: installing ${need_apt[*]} from Debian packages"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  for svc in nginx docker-registry; do
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi
echo "deps-bench: ok ($(nginx -v 2>&1), $(docker-registry --version 2>&1 | head -1), $(wrk --version 2>&1 | head -1))"
