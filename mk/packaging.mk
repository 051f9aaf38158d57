# Packaging: Helm chart, kustomize base, GitOps examples, images, generated docs.
# Usage: make -f mk/packaging.mk packaging-test   (after mk/deps-packaging.sh)
# The top-level Makefile may `include mk/packaging.mk`; paths are relative to
# the repository root.
# Defined in the top-level Makefile; this default lets the file run alone.
BUILD_BINS ?= cargo test --workspace --no-run

CARGO ?= cargo
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
TOOLS := $(CURDIR)/.tools
PKG_PY := $(TOOLS)/venv/bin/python
PKGCHECK := $(PKG_PY) tests/packaging/pkgcheck.py
export HELM := $(TOOLS)/bin/helm
export OPERATOR_BIN := $(CARGO_TARGET_DIR)/debug/banter-operator

IMAGE_REGISTRY ?= banterpacks
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DOCKER ?= docker

.PHONY: packaging-deps packaging-test packaging-generate packaging-check-generated \
        chart-test kustomize-test examples-test pss-test gitops-test rbac-test \
        operator-bin images chart-package

## packaging-deps: install helm, kubernetes-validate, jsonschema, lua5.4 into .tools/
packaging-deps:
	bash mk/deps-packaging.sh

$(HELM) $(PKG_PY):
	bash mk/deps-packaging.sh

operator-bin:
	$(BUILD_BINS)

## packaging-generate: regenerate the chart's CRD template, the kustomize base and docs/crd-reference.md
packaging-generate: $(HELM) $(PKG_PY)
	$(PKGCHECK) generate

packaging-check-generated: $(HELM) $(PKG_PY)
	$(PKGCHECK) check-generated

chart-test: $(HELM) $(PKG_PY)
	$(PKGCHECK) chart

kustomize-test: $(HELM) $(PKG_PY)
	$(PKGCHECK) kustomize

examples-test: $(PKG_PY) operator-bin
	$(PKGCHECK) examples

pss-test: $(HELM) $(PKG_PY) operator-bin
	$(PKGCHECK) pss

gitops-test: $(PKG_PY)
	$(PKGCHECK) gitops

## rbac-test: the chart's RBAC rules against the requests the controller sends
rbac-test:
	$(CARGO) test -p banter-operator --test rbac

## packaging-test: every packaging check; fails on the first problem
packaging-test: packaging-check-generated chart-test kustomize-test examples-test pss-test gitops-test rbac-test
	@echo "packaging-test: all packaging checks passed"

## chart-package: helm package into target/charts/
chart-package: $(HELM)
	$(HELM) package charts/banter-operator --destination $(CARGO_TARGET_DIR)/charts

## images: build both container images (needs a Docker/BuildKit engine)
images:
	@command -v $(DOCKER) >/dev/null || { echo "images: no $(DOCKER) engine on this machine; the Dockerfiles are crates/banter-registry/Dockerfile and crates/banter-operator/Dockerfile" >&2; exit 1; }
	$(DOCKER) build --build-arg VERSION=$(VERSION) -f crates/banter-registry/Dockerfile -t $(IMAGE_REGISTRY)/banter-registry:$(VERSION) .
	$(DOCKER) build --build-arg VERSION=$(VERSION) -f crates/banter-operator/Dockerfile -t $(IMAGE_REGISTRY)/banter-operator:$(VERSION) .
