"""The ``mlq`` command line."""
