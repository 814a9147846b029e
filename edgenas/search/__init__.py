"""Search strategies; ``run_search`` in :mod:`edgenas.search.runner` is the entry point."""
