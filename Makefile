# Two commands: `make run` (portal + worker + simulator + SMTP sink + demo data) and `make test`.
.PHONY: run test setup-run setup-test migrate bench

run: setup-run
	.venv/bin/python scripts/run_all.py

test: setup-test
	bash scripts/test_all.sh

setup-run:
	bash scripts/setup.sh run

setup-test:
	bash scripts/setup.sh test
