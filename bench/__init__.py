"""ClipMorph benchmarks: `make bench` (or `python -m bench`). Prints tables, writes
bench/results.json, bench/RESULTS.md and bench/throughput.png."""
