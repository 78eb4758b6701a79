"""The ``stripemeter`` command line."""
