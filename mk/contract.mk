# The registry's HTTP contract from outside, on both backends: the pack
# schema judged by python jsonschema against the registry, and schemathesis
# against the served OpenAPI document.
# Defined in the top-level Makefile; this default lets the file run alone.
BUILD_BINS ?= cargo test --workspace --no-run
CONTRACT_PY ?= $(CURDIR)/.tools/venv/bin/python

.PHONY: contract-test

## contract-test: schema-agreement corpus and schemathesis (>= 2000 cases per backend) against the real registry
contract-test:
	$(BUILD_BINS)
	$(CONTRACT_PY) tests/contract/contract.py
