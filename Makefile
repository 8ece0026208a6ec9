# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-dryrun install install-test lint clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The CPU build of TensorFlow (README "Install" has the GPU lines).
install: $(BIN)/activate
	$(BIN)/pip install -q -e ".[cpu]"

install-test: $(BIN)/activate
	$(BIN)/pip install -q -e ".[cpu,test]"

# The end-to-end demo: synthetic data, a few minutes of training, samples.
# fid1k against the demo's own images at the start and the end (the FID
# Inception weights are downloaded once; DEMO_METRICS=none skips them).
DEMO_DATA := data/synthetic16
DEMO_OUT := results/demo
DEMO_METRICS ?= fid1k

demo: install
	@test -d $(DEMO_DATA) || $(BIN)/python -m datasets.dataset_tool \
		create_synthetic $(DEMO_DATA) --resolution 16 --num-images 2000 \
		--small-shapes 0 --simple
	$(BIN)/python -m msg_stylegan.networks --config=msg-stylegan-demo --summary
	$(BIN)/python train.py --config=msg-stylegan-demo --data=$(DEMO_DATA) \
		--outdir=$(DEMO_OUT) --metrics=$(DEMO_METRICS)
	run=$$(ls -d $(DEMO_OUT)/*-msg-stylegan-demo-* | tail -n 1) && \
	$(BIN)/python generate.py --network=$$run/network-final.pkl \
		--seeds=0-15 --scales=all --grid --trunc=1 --outdir=$$run/samples && \
	echo "Demo done: sample grids per scale in $$run/<res>x<res>/, " \
		"multi-scale samples in $$run/samples/grid.png"

# Test processes: each file runs whole in one of them (module fixtures are
# built once); two fill a 2-core machine, more cores take more (memory: ~3 GB each).
# The 15 slowest tests are listed at the end, to see where the time goes.
TEST_WORKERS ?= 2

test: install-test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--durations=15 -m "not dryrun"

# The device scripts (bench/gpu_quality.sh, bench/gpu_peers.sh) run whole,
# TINY, on the CPU: run before a device call (5-30 minutes on 2 cores).
test-dryrun: install-test
	$(BIN)/python -m pytest -q -m dryrun

lint: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) results
