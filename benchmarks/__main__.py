"""`python -m benchmarks`: run every benchmark and write docs/benchmarks.md (see suite.py)."""

from benchmarks.suite import main

main()
