# The two commands a newcomer needs: `make demo` and `make test`. Everything else is optional.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= compress,eval,k8s,dev
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch's OpenMP workers spin while waiting and steal the core the working thread needs on a small,
# shared machine (a demo-model training step: 5.4-6.6 s spinning vs 1.96 s passive, 2 threads): sleep instead.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install demo test ui bench lookup clean images k8s-up k8s-down k8s-test k8s-e2e k8s-bench

install: $(VENV)/.installed

# Reinstall only when the dependency files change.
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

demo: install          ## build/cache the demo model, materialize the whole graph, print approved models
	$(BIN)/python -m dagster_project.demo_run

test: install          ## start the real Model Registry server, run every test
	bash scripts/run_tests.sh

ui: install            ## the Dagster UI on http://127.0.0.1:3000 over the demo's instance
	DAGSTER_HOME=$(CURDIR)/var/dagster_home $(BIN)/python -c "import dagster_project.demo_run as r; r.ensure_dagster_home()"
	DAGSTER_HOME=$(CURDIR)/var/dagster_home $(BIN)/dagster dev -h 127.0.0.1 -p 3000

lookup: install        ## approved models in the registry
	$(BIN)/dmc models list

bench: install         ## every benchmark ratio (see benchmarks/README.md)
	$(BIN)/python benchmarks/run_all.py

images: install        ## build both images offline (local Debian base, private dockerd) and smoke-run them
	bash scripts/images/build.sh

k8s-up:                ## a real one-node Kubernetes cluster on loopback (prints its kubeconfig)
	bash scripts/k8s/cluster.sh start

k8s-down:              ## stop that cluster (no process left behind)
	bash scripts/k8s/cluster.sh stop

k8s-test: install      ## the real scheduler places GPU step pods only with their toleration
	$(BIN)/python -m pytest tests/k8s -x -q

k8s-e2e: install      ## the demo graph as pods on that cluster (needs `make images`); tears it all down
	$(BIN)/python scripts/k8s/e2e.py

k8s-bench: k8s-e2e    ## the same run; its numbers: pod overhead per step, cluster vs in-process wall per run

.PHONY: gpu-wheels gpu-check
gpu-wheels: install    ## fill .gpu-carry/ (wheels + demo model) for the GPU run (benchmarks/gpu.md)
	bash scripts/gpu/prepare.sh

gpu-check: install     ## the GPU check's dry run here on CPU (on the GPU machine: bash scripts/gpu/check.sh)
	bash scripts/gpu/check.sh --dry-run

clean:
	rm -rf var .pytest_cache
