# Every target that runs code builds the local virtualenv first: modules installed
# into site-packages are never reloadable, so the project is installed editable.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install test stress run bench bench-quick lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

stress: $(STAMP)
	$(PY) -m pytest -m slow -q $(PYTEST_ARGS)

run: $(STAMP)
	$(VENV)/bin/hotmod serve demo_app.wsgi:app --host $(HOST) --port $(PORT)

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
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
