# Monitoring: alert rules checked and unit-tested by promtool, runbooks
# present, and every dashboard query evaluated by a real Prometheus.
# Defined in the top-level Makefile; this default lets the file run alone.
BUILD_BINS ?= cargo test --workspace --no-run

PROMTOOL ?= promtool

.PHONY: monitoring-test

## monitoring-test: promtool check/test rules, runbook sections, and every panel query against a real Prometheus
monitoring-test: $(PKG_PY)
	$(PROMTOOL) check rules alerts/*.rules.yml
	$(PROMTOOL) test rules alerts/tests/*.test.yml
	$(PKG_PY) tests/monitoring/alertcheck.py
	$(BUILD_BINS)
	python3 tests/monitoring/promquery.py
