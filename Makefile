# Every target that runs code builds the local virtualenv first: modules installed
# into site-packages are never reloadable, so the project is installed editable.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
# A pip constraints file for the install (`make test-lowest` passes
# .ci/lowest-constraints.txt); a change to it rebuilds the virtualenv.
CONSTRAINTS ?=
# The Pythons that pyproject.toml claims, as X.Y: `make test-matrix` and
# `make test-lowest` run on each, found on PATH or through pyenv.
PYTHONS ?= 3.11 3.12 3.13

.PHONY: install test test-matrix test-lowest stress run run-asgi bench bench-quick lint clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,postgres]' $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS))
	touch $(STAMP)

# The suite waits on servers and file events far more than it computes: two workers
# halve its time on two cores. --dist loadfile keeps each file's tests in one worker,
# in order: a file's module-scoped server, and bench smoke's one output folder, are
# never shared between processes. Every test that counts PostgreSQL backends counts
# its own application_name, so workers never see each other's. TEST_WORKERS=0 runs
# it in this process alone.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

# The suite on each of PYTHONS with the newest releases, each in its own .venv-X.Y.
test-matrix:
	bash .ci/matrix.sh newest $(PYTHONS)

# The suite on each of PYTHONS with the lowest versions pyproject.toml allows of
# werkzeug, watchdog and psycopg (.ci/lowest-constraints.txt), in .venv-X.Y-lowest.
test-lowest:
	bash .ci/matrix.sh lowest $(PYTHONS)

stress: $(STAMP)
	$(PY) -m pytest -m slow -q $(PYTEST_ARGS)

run: $(STAMP)
	$(VENV)/bin/hotmod serve demo_app.wsgi:app --host $(HOST) --port $(PORT)

# The same notes over ASGI: FastAPI on uvicorn, with a live feed (docs/demo.md).
run-asgi: $(STAMP)
	$(VENV)/bin/hotmod serve demo_app.asgi:app --host $(HOST) --port $(PORT)

bench: $(STAMP)
	$(PY) -m bench

bench-quick: $(STAMP)
	$(PY) -m bench --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check hotmod reloader middleware demo_app tests bench
	rm -rf build/typecheck && mkdir -p build/typecheck/hotmod
	ln -s ../../../hotmod/__init__.py ../../../hotmod/py.typed build/typecheck/hotmod/
	ln -s ../../../reloader ../../../middleware build/typecheck/hotmod/
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .venv-3.* build *.egg-info .pytest_cache .mypy_cache .ruff_cache
