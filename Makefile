# The two commands: `make run` serves the map, `make test` runs every test.
# Both prepare what they need first (system packages as root, .venv, npm).
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv/bin

.PHONY: run test test-cluster lint audit config bench clean

run:
	@scripts/bootstrap.sh system run
	@scripts/bootstrap.sh venv
	@scripts/bootstrap.sh npm
	$(VENV)/mapserver run --host $(HOST) --port $(PORT)

test:
	@scripts/bootstrap.sh system test
	@scripts/bootstrap.sh venv test
	@scripts/bootstrap.sh npm
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(BANDIT)
	AUDIT_OFFLINE=$${AUDIT_OFFLINE:-warn} $(VENV)/python scripts/audit_dependencies.py
	$(VENV)/pytest $(PYTEST_ARGS)

# A PostgreSQL primary + streaming replica, two app processes and nginx (about a minute).
test-cluster:
	@scripts/bootstrap.sh system test
	@scripts/bootstrap.sh venv test
	@scripts/bootstrap.sh npm
	$(VENV)/pytest -m cluster tests/cluster $(PYTEST_ARGS)

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

# Static analysis (bandit: fails on any high-severity finding) and the dependency audit
# (pip-audit against PyPI's vulnerability data: fails when a pinned package is known
# vulnerable, or when the data cannot be read; `make test` only warns about the latter).
BANDIT = $(VENV)/bandit -q -c pyproject.toml -r mapserver loaders layers reports analysis scripts --severity-level high
audit:
	$(BANDIT)
	$(VENV)/python scripts/audit_dependencies.py

# Regenerate config/pygeoapi.yml from the layer catalogue (commit the result).
config:
	$(VENV)/mapserver config build

clean:
	$(VENV)/mapserver db stop || true
	rm -rf .venv frontend/node_modules var
