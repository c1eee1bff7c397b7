"""The clients the benchmark compares. Each runs as ``python -m bench.runners.<name> JOB.json``
in a cold process and prints one ``BENCH-RESULT {json}`` line with its own counters."""
