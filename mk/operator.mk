# banter-operator targets; included from the top-level Makefile.
# Defined in the top-level Makefile; this default lets the file run alone.
BUILD_BINS ?= cargo test --workspace --no-run
CARGO ?= cargo
OPERATOR_BIN := $(CURDIR)/target/debug/banter-operator

.PHONY: crds check-crds golden

## crds: regenerate crds/banterregistry.yaml from the Rust types
crds:
	$(BUILD_BINS)
	$(OPERATOR_BIN) crd > crds/banterregistry.yaml

## check-crds: fail when crds/ is stale (also checked by `cargo test`)
check-crds:
	$(CARGO) test -p banter-operator --test crd_fresh

## golden: regenerate the golden files (render of manifests/examples/, request bodies of the mock reconcile tests)
golden:
	UPDATE_GOLDEN=1 $(CARGO) test -p banter-operator --test golden --test reconcile_mock

.PHONY: bench-operator
## bench-operator: time and allocations per reconcile (builders + compare-before-apply) for N registries, then N BanterRegistry objects created at once, the real operator against a stateful fake API server over HTTP, with its RSS (release build; REGISTRIES=1000)
bench-operator:
	$(CARGO) build --release -p banter-operator --example scale --example reconcile_cost --bin banter-operator
	$(CURDIR)/target/release/examples/reconcile_cost --registries $(or $(REGISTRIES),1000)
	$(CURDIR)/target/release/examples/scale --registries $(or $(REGISTRIES),1000) --operator $(CURDIR)/target/release/banter-operator
