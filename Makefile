# Banter Operator — see README.md. `make run` and `make test` are the two entry points.
SHELL := /bin/bash
CARGO ?= cargo
export PATH := $(CURDIR)/.tools/bin:$(PATH)
# The binaries the checks run, built exactly as `cargo test --workspace`
# builds them (it builds every bin for the integration tests): a
# `cargo build -p …` resolves dependency features differently and would
# compile the whole dependency tree a second time. A no-op after the tests.
BUILD_BINS := $(CARGO) test --workspace --no-run

DEMO_PACKS := crates/banter-registry/demo

include mk/operator.mk
include mk/packaging.mk
include mk/monitoring.mk
include mk/contract.mk
include mk/bench.mk

.PHONY: run test deps build fmt lint docs packaging-checks bench

RUN_LISTEN ?= 127.0.0.1:8080
RUN_DATA ?= data
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)

## run: the registry on embedded SQLite in ./data, seeded with the demo packs, on http://127.0.0.1:8080
## (RUN_LISTEN and RUN_DATA change address and directory); refuses to start, before touching the
## database, when the address is taken or another registry serves the same database
run:
	$(CARGO) build -p banter-registry --bin banter-registry
	$(TARGET_DIR)/debug/banter-registry serve --listen $(RUN_LISTEN) --sqlite-path $(RUN_DATA)/registry.db --seed $(DEMO_PACKS)

## test: the whole suite (installs missing test dependencies first)
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace
	$(MAKE) --no-print-directory packaging-checks

## packaging-checks: chart, kustomize, examples, Pod Security, GitOps, alert rules, the HTTP contract (the RBAC test runs in cargo test)
packaging-checks: packaging-check-generated chart-test kustomize-test examples-test pss-test gitops-test monitoring-test contract-test

## bench: the benchmarks (never part of `make test`): the registry's read path against nginx and distribution, the operator at scale
bench: bench-http bench-operator

## deps: install what the tests need and the machine lacks (quick when present)
deps:
	@mk/deps.sh
	@bash mk/deps-packaging.sh

build:
	$(CARGO) build --workspace

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## docs: regenerate generated documentation (docs/cli.md); `make test` fails when it is stale
docs:
	UPDATE_DOCS=1 $(CARGO) test -p banter-registry --test cli_reference
