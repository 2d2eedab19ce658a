# A new user's two commands: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test venv dev bench model clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime
dev: $(VENV)/.dev

run: $(VENV)/.runtime
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.address localhost

test: $(VENV)/.dev
	$(PY) -m pytest -q

bench: $(VENV)/.dev
	$(PY) bench/trace_overhead.py
	$(PY) bench/shapes_speed.py

model: $(VENV)/.runtime
	$(PY) -m vit_core.training.loop --preset shapes-demo --out assets/models/shapes-vit

clean:
	rm -rf $(VENV) .pytest_cache
