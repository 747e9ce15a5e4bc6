# The two commands of the README. Each installs what it needs first.
PORT ?= 5000
HOST ?= 127.0.0.1

.PHONY: demo test bootstrap-demo bootstrap-test

demo:
	@scripts/bootstrap.sh demo
	@scripts/demo.sh

test:
	@scripts/bootstrap.sh test
	@.venv/bin/python -m pytest $(PYTEST_ARGS)
