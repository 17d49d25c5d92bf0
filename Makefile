# Convenience targets; each calls a script in scripts/ that also works on its own.
.PHONY: demo test lint bench clean

demo:  ## emulated meter + embedded broker + bridge, live values (sets up .venv first)
	scripts/demo.sh

test:  ## the whole test suite, set-up included (lint, types, unit, integration, Node-RED, Home Assistant)
	scripts/test.sh

lint:  ## ruff and mypy --strict (sets up .venv first)
	scripts/lint.sh

bench:  ## fleet benchmark (see bench/README.md)
	scripts/bootstrap.sh
	.venv/bin/python bench/fleet.py --meters 100 --duration 30

clean:
	rm -rf .venv .venv-ha-* dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
