"""The ``edgenas`` command line: a thin root group, heavy imports inside commands."""
