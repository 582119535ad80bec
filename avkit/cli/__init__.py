"""The ``avkit`` command line: a thin layer over the Python API (see :mod:`avkit.cli.main`)."""
