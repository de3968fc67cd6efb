"""Benchmarks: `python -m bench.run_all` regenerates every table of BENCHMARKS.md."""
