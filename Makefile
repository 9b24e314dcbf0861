# The two commands: `make run` serves the map, `make test` runs every test.
# Both prepare what they need first (system packages as root, .venv, npm).
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv/bin

.PHONY: run test test-cluster lint config bench clean

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

# Regenerate config/pygeoapi.yml from the layer catalogue (commit the result).
config:
	$(VENV)/mapserver config build

clean:
	$(VENV)/mapserver db stop || true
	rm -rf .venv frontend/node_modules var
