# make bench: the full benchmark (a few minutes); prints a table and writes bench/results.json.
.PHONY: bench
bench: deps
	$(PYTHON) bench/bench.py
