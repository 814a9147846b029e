"""Per-device latency tables of the search spaces, and the predictor the search uses.

* :mod:`~edgenas.latency.keys`: the table keys of a network (built and parsed in one place; no torch);
* :mod:`~edgenas.latency.files`: how tables are named and where they are found;
* :mod:`~edgenas.latency.spaces`: the spaces tables know, by name (a registry);
* :mod:`~edgenas.latency.blocks`, :mod:`~edgenas.latency.measure`, :mod:`~edgenas.latency.build`:
  each block as a module, timed on the device, a table written and validated;
* :mod:`~edgenas.latency.evolved`: the evolved space's tables, which grow with the search;
* :mod:`~edgenas.latency.prior`: estimated tables of boards we cannot reach (an analytic roofline);
* :mod:`~edgenas.latency.target`: a search's target device: its table and the result measured there;
* :mod:`~edgenas.latency.api`: the Python forms of ``edgenas lut`` and ``edgenas space sample``.

The table itself (format, checks, calibration, prediction) is
:class:`bench.latency_table.LatencyTable`: torch-free, it predicts on the board.
"""
