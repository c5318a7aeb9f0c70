"""Maintainer tools that only `make` and the command line use: the results report, the course site, running the series."""
