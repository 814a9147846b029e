"""From a searched network to artifacts measured on the target: the glue of ``export``, ``bench``, ``sweep``, ``compare``.

* :mod:`~edgenas.deploy.source`: which network a name means, with its input spec, calibration and parity data;
* :mod:`~edgenas.deploy.export`: :func:`run_export`, the Python form of ``edgenas export``;
* :mod:`~edgenas.deploy.bench`: :func:`run_bench`, ``edgenas bench`` (each artifact in a fresh worker on the device);
* :mod:`~edgenas.deploy.data`: labelled held-out images shipped to the device as ``.npz``;
* :mod:`~edgenas.deploy.sweep`: resumable sweeps on one device or a fleet (``edgenas sweep``);
* :mod:`~edgenas.deploy.compare`: the searched network next to the baselines (``edgenas compare``).

The exporters (``exporters``), the torch-free runner (``bench``) and the
transports (``devices``) know nothing of the search; this package joins them.
"""
