"""The stadsnav benchmark: `python -m bench` (or `make bench`); see docs/performance.md.

It starts the server as a subprocess on each backend, drives it over HTTP from this process and
prints one JSON line per measured figure on stdout. Progress and a summary go to stderr.
"""
