# citybrain: `make demo` runs the platform with the Zhoucun demo district; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo serve test lint format bench install vendor chromium mosquitto clean messages

demo: install
	$(VENV)/bin/citybrain demo

serve: install
	$(VENV)/bin/citybrain serve

test: install chromium mosquitto
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(PY) scripts/extract_messages.py --check

# Re-extract the UI strings and update the gettext catalogs (then translate the new zh_CN ones).
messages: install
	$(PY) scripts/extract_messages.py

format: install
	$(VENV)/bin/ruff format src tests bench

bench: install
	$(PY) bench/run.py
	$(PY) bench/events_bench.py

install: $(STAMP) vendor

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "citybrain needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Front-end libraries come from the npm registry, pinned by package-lock.json, and are
# copied into the app's static folder; nothing is loaded from a CDN at run time.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

vendor: node_modules/.package-lock.json
	bash scripts/vendor.sh

chromium:
	bash scripts/ensure-chromium.sh

# The IoT tests need a real MQTT broker at 127.0.0.1:1883 and the mosquitto binary.
mosquitto:
	bash scripts/ensure-mosquitto.sh

clean:
	rm -rf $(VENV) node_modules src/citybrain/web/static/vendor var
