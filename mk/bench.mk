# make bench: the full benchmark (about 4 minutes); prints a table, writes bench/results.json and
# rewrites docs/performance.md's figures from it. make perf-doc: the figures alone, from results.json.
.PHONY: bench perf-doc
bench: deps
	$(PYTHON) bench/bench.py
	$(PYTHON) bench/report.py

perf-doc:  # the standard library alone: no .venv needed
	python3 bench/report.py
