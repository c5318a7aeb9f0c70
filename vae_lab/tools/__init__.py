"""Maintainer tools that only `make` and the command line use: the results report and running the series."""
