# Benchmarks: never part of `make test` (speed is measured, not asserted).
# Defined in the top-level Makefile; this default lets the file run alone.
CARGO ?= cargo

.PHONY: bench-http

## bench-http: banter-registry (SQLite, Redis) next to nginx and the CNCF distribution registry, wrk at 64 and 256 connections, on loopback (release build; BENCH_DURATION, BENCH_REPEATS)
bench-http:
	@# redis-server comes with the test dependencies; the peers with deps-bench.
	bash mk/deps.sh
	bash mk/deps-bench.sh
	$(CARGO) build --release -p banter-registry --bin banter-registry
	python3 tests/bench/httpbench.py --duration $(or $(BENCH_DURATION),3) --repeats $(or $(BENCH_REPEATS),3)
