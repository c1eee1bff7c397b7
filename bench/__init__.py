"""Benchmarks for cspgraph: ``python -m bench`` (or ``make bench``); see docs/benchmarks.md.

Never part of ``make test``. Everything here talks to the emulator over loopback only.
"""
