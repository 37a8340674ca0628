# Every target creates and reuses .venv, so each works from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv install test lint demo benchmarks bench-fanout bench-broadcast bench-controller bench-gateway bench-soak bench-sandbox bench-parse bench-slots bench-faas-policy bench-faas-scheduler bench-faas-replay proto clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "shoal needs Python 3.11+"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)  # a link to .venv/bin/shoal in ~/.local/bin (on most PATHs)
	@mkdir -p $(HOME)/.local/bin
	ln -sf $(CURDIR)/$(VENV)/bin/shoal $(HOME)/.local/bin/shoal
	@case ":$$PATH:" in *":$(HOME)/.local/bin:"*) ;; *) echo "add $(HOME)/.local/bin to PATH";; esac

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

demo: $(STAMP)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# Each writes benchmarks/results/NAME.{json,md}; run them on an otherwise idle machine.
benchmarks: bench-fanout bench-broadcast bench-controller bench-gateway bench-soak

bench-fanout: $(STAMP)
	@bash scripts/bench-deps.sh
	$(PY) benchmarks/run_fanout.py

bench-broadcast: $(STAMP)  # root: network namespaces and tc
	@bash scripts/bench-deps.sh
	$(PY) benchmarks/broadcast.py --rate 50mbit --fast-rate 1gbit

bench-controller: $(STAMP)
	$(PY) benchmarks/controller.py

bench-gateway: $(STAMP)
	@bash scripts/bench-gateway-deps.sh
	$(PY) benchmarks/gateway.py

bench-soak: $(STAMP)  # 10 minutes: a quiet command while fan-outs run every 30 s
	$(PY) benchmarks/soak.py

bench-sandbox: $(STAMP)  # root: cgroups; two clusters of 64 agents
	$(PY) benchmarks/sandbox.py

bench-parse: $(STAMP)  # generates 1 GiB of logs into benchmarks/work/ (kept for re-runs)
	$(PY) benchmarks/bench_parse.py

bench-faas-policy: $(STAMP)  # pure simulation, about a minute
	$(PY) benchmarks/faas_policy.py

bench-faas-scheduler: $(STAMP)  # root (containers are sandboxes); about 7 minutes
	$(PY) benchmarks/faas_scheduler.py

bench-faas-replay: $(STAMP)  # root; 4 local agents, three replays of a 5-minute trace
	$(PY) benchmarks/faas_replay.py

bench-slots: $(STAMP)  # root: cpuset cgroups, CPUs 0 and 1; about 4 minutes
	$(PY) benchmarks/bench_slots.py

proto: $(STAMP)
	$(PY) -m shoal.core.protogen

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
