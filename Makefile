# A new user's two commands: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run hall test venv dev bench model clean cluster cluster-stop

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

# A lecture hall: the same app, warm before its port opens (deploy/hall.py), reachable from the room's phones.
hall: $(VENV)/.runtime
	$(PY) -m streamlit run deploy/hall.py --server.port $(PORT) --server.address 0.0.0.0

test: $(VENV)/.dev
	$(PY) -m pytest -q

bench: $(VENV)/.dev
	$(PY) bench/trace_overhead.py
	$(PY) bench/shapes_speed.py

# Two stages: shapes-demo-base into build/ (reused when build/ already holds exactly that run), then
# shapes-demo from it. Stage 1 is shipped too: the shortcut lesson compares the two.
model: $(VENV)/.runtime
	$(PY) -m vit_core.training --preset shapes-demo --out assets/models/shapes-vit
	mkdir -p assets/models/shapes-vit-stage1
	cp build/shapes-demo-base/model.safetensors build/shapes-demo-base/model.json assets/models/shapes-vit-stage1/

# N replicas behind HAProxy with sticky sessions (deploy/README.md); Ctrl-C or `make cluster-stop` stops it.
# PORT here defaults to 8600 (8501 stays `make run`'s), unless given on the command line or in the environment.
# BIND=0.0.0.0 serves a hall (default: this machine only).
REPLICAS ?= 2
BIND ?= 127.0.0.1
CLUSTER_PORT := $(if $(filter file,$(origin PORT)),8600,$(PORT))

cluster: $(VENV)/.runtime
	$(PY) deploy/cluster.py start --replicas $(REPLICAS) --port $(CLUSTER_PORT) --bind $(BIND)

cluster-stop:
	$(if $(wildcard $(PY)),$(PY),python3) deploy/cluster.py stop

clean:
	rm -rf $(VENV) .pytest_cache
