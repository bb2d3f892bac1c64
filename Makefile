# The two commands of the README: `make demo` (main job) and `make test`. Both set up first (idempotent).
SHELL := /bin/bash
ENV := source scripts/env.sh

.PHONY: setup demo test lint colcon

setup:
	bash scripts/setup.sh

demo: setup
	$(ENV) && python -m adamoe_ros.demo

test: setup
	$(ENV) && bash scripts/run_tests.sh

lint: setup
	$(ENV) && ruff check . && ruff format --check .

colcon: setup
	$(ENV) && colcon build --base-paths . --build-base build --install-base install
