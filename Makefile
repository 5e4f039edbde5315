# Driftline — one entry point for people and CI.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# two pytest processes, a test file each at a time (module fixtures are shared within a file);
# `make test PYTEST_ARGS="-n 0"` runs them in one
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: install demo test lint bench bench-memory bench-detection bench-detectors bench-folding bench-catalogue bench-reads bench-canary bench-promotion bench-estimation bench-slices bench-peers clean system-deps

install: $(STAMP)

$(STAMP): pyproject.toml sdk/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# the thin SDK (sdk/, its own distribution) first: the platform depends on it
	$(BIN)/python -m pip install --quiet -e ./sdk -e '.[dev]'
	touch $(STAMP)

# The real ClickHouse server the tests start (Debian's clickhouse-server 18.16), and the other
# Debian packages tests run for real.
system-deps:
	@command -v clickhouse-server >/dev/null 2>&1 || { \
	  echo "installing clickhouse-server (Debian package) for the store tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >/dev/null; }
	@# kcat, the Kafka command-line client the README uses (run as `driftline kcat`)
	@command -v kcat >/dev/null 2>&1 || { \
	  echo "installing kcat (Debian package) for the command-line client tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null; }
	@# Alertmanager (and amtool) for the alertmanager subscription and compose config tests
	@command -v prometheus-alertmanager >/dev/null 2>&1 || { \
	  echo "installing prometheus-alertmanager (Debian package) for the Alertmanager tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager >/dev/null; }
	@# Prometheus: the /metrics tests scrape a running worker with the real thing
	@command -v prometheus >/dev/null 2>&1 || { \
	  echo "installing prometheus (Debian package) for the /metrics scrape tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@# headless Chromium for the dashboard's browser tests (Playwright drives this one)
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  echo "installing chromium + chromium-driver (Debian packages) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

demo: install
	$(BIN)/driftline demo $(ARGS)

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

bench: install
	$(BIN)/python -m bench.pipeline $(ARGS)

# where the worker's memory goes in the 100 x 50 case, in process (no broker, no store)
bench-memory: install
	$(BIN)/python -m bench.memory $(ARGS)

bench-detection: install
	$(BIN)/python -m bench.detection $(ARGS)

bench-detectors: install
	$(BIN)/python -m bench.detectors $(ARGS)

# folding events into window profiles (issue 16): the columnar path against the per-value one
# it replaced, and the worker's whole path (decode included), in one run (~1 min)
bench-folding: install
	$(BIN)/python -m bench.folding $(ARGS)

bench-catalogue: install
	$(BIN)/python -m bench.catalogue $(ARGS)

# every dashboard request on a store of 100 million metric rows it fills itself, on chDB and a
# ClickHouse server (a few GB in a temp dir, ~40 min): `make bench-reads ARGS="--quick --step"`
bench-reads: install
	$(BIN)/python -m bench.reads $(ARGS)

bench-canary: install
	$(BIN)/python -m bench.canary $(ARGS)

bench-promotion: install
	$(BIN)/python -m bench.promotion $(ARGS)

# against NannyML's CBPE and DLE, which run in their own virtualenv (.bench-venvs/nannyml,
# created on first use): `make bench-estimation ARGS=--quick`
bench-estimation: install
	$(BIN)/python -m bench.estimation $(ARGS)

# slice discovery against sliceline (SliceLine in Python), which runs in its own virtualenv
# (.bench-venvs/sliceline, created on first use): `make bench-slices ARGS=--quick`
bench-slices: install
	$(BIN)/python -m bench.slices $(ARGS)

# one window's drift tests against Evidently, Alibi Detect, NannyML and a per-feature scipy loop,
# each peer in its own virtualenv (.bench-venvs/<peer>, created on first use), on 100,000 x 50
# and x 100 synthetic frames: `make bench-peers ARGS=--quick` (20,000 x 50)
bench-peers: install
	$(BIN)/python -m bench.drift_peers $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info sdk/*.egg-info sdk/build .pytest_cache .mypy_cache .ruff_cache driftline-data .bench-venvs
