# Two entry points (see README): `make demo` runs the main job, `make test` runs the tests.
# Each creates the virtual environment on first use; torch is pinned to the CPU build that lies on local disk.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
NPC := $(VENV)/bin/npc
TORCH_PIN := torch==2.13.0

.PHONY: venv demo test test-fast schema docs clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[runtime,test,lsp]"
	touch $@

demo: venv
	$(NPC) validate examples/*.yaml examples/*.json examples/*.npc
	$(NPC) compile examples/resnet18-classification.yaml -o runs/demo/model.py
	$(NPC) train examples/resnet-digits.yaml --out runs/demo

test: venv
	$(PY) -m pytest -q -n 2

test-fast: venv
	$(PY) -m pytest -q -n 2 -m "not slow"

schema: venv
	$(NPC) schema -o schemas/model.schema.json

clean:
	rm -rf runs build dist *.egg-info .pytest_cache
