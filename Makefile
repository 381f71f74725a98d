# make test  : create .venv if missing, install visionmix into it, run the test suite
# make demo  : create .venv if missing, train the quickstart Diffusion-RWKV on the bundled digits, score its samples
# make gpu-check : the checks that need a GPU, as one script (exits 0 on a machine without CUDA)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned: a bare "torch" requirement would pull a multi-GB build from the index
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.visionmix-installed

.PHONY: test demo install gpu-check clean

# --no-compile: modules are byte-compiled when first imported, not all of torch up front (~25 s saved).
# The native WKV op is compiled into its JIT cache (ops/loader.py) while the other dependencies install;
# a machine without a compiler gets the PyTorch fallback at run time instead, so that step may fail.
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile $(TORCH_SPEC) ninja
	( $(PY) -c "import ops; ops.loader.load_native()" 2>/dev/null || echo "native WKV op not built now: $$?" ) & \
	$(PY) -m pip install --quiet --no-compile -e ".[dev]" && wait
	touch $(STAMP)

install: $(STAMP)

# byte-code caching on (some environments set PYTHONDONTWRITEBYTECODE): the suite starts ~100 tool subprocesses,
# and each would otherwise recompile torch's and mmengine's sources (~5 s each)
test: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -q tests

demo: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(PY) tools/demo.py

# one prepared script for a machine with a GPU: CUDA WKV op vs CPU, every mixer on CUDA vs CPU, 200 bf16 training
# iterations, the CUDA benchmark; log in work_dirs/gpu_check/gpu_check.log. Says so and exits 0 without CUDA.
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py

clean:
	rm -rf $(VENV) build *.egg-info
