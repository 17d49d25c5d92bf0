# Convenience targets; each calls a script in scripts/ that also works on its own.
.PHONY: demo test lint bench clean

demo:  ## emulated meter + embedded broker + bridge, live values (sets up .venv first)
	scripts/demo.sh

test:  ## the whole test suite, set-up included (lint, types, unit, integration, Node-RED, Home Assistant)
	scripts/test.sh

lint:
	scripts/bootstrap.sh
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy lib/countis countis_bridge

bench:  ## fleet benchmark (see bench/README.md)
	scripts/bootstrap.sh
	.venv/bin/python bench/fleet.py --meters 100 --duration 30

clean:
	rm -rf .venv .venv-ha .venv-ha-* .mypy_cache .ruff_cache .pytest_cache .hypothesis
