"""edgenas: self-supervised, hardware-aware architecture search for tiny edge networks.

One function per step of the pipeline, each the Python form of its command
(imported on first use, so ``import edgenas`` stays light)::

    import edgenas
    from edgenas.search.config import SearchConfig

    result = edgenas.run_search(SearchConfig(out="runs/demo"))       # edgenas search
    edgenas.run_finetune(...)                                          # edgenas finetune
    edgenas.run_evaluation(...)                                        # edgenas evaluate
    edgenas.run_export("runs/demo", "onnx", "fp32,int8")               # edgenas export
    edgenas.run_bench(["runs/demo"])                                   # edgenas bench
    edgenas.run_sweep(plan, "sweeps/local", Reach("local"))            # edgenas sweep
    edgenas.run_compare("runs/demo", Reach("local"))                   # edgenas compare
    edgenas.run_deploy("runs/demo", Reach("local"))                    # edgenas deploy
    edgenas.build_lut(Reach("local"), "darts-light", SpaceOptions())   # edgenas lut build
    edgenas.profile_target("mobilenet_v2_035")                         # edgenas profile

No entry point is named like a subpackage (``edgenas.search`` is the package
of the strategies), so importing one never hides another.
``edgenas.models.build(spec)`` rebuilds a network from its ``arch.json``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> "module:attribute" it stands for
ENTRY_POINTS = {
    "run_search": "edgenas.search.runner:run_search",
    "run_finetune": "edgenas.train.finetune:run_finetune",
    "run_evaluation": "edgenas.evaluate.protocol:run_evaluation",
    "run_export": "edgenas.deploy.export:run_export",
    "run_bench": "edgenas.deploy.bench:run_bench",
    "run_sweep": "edgenas.deploy.sweep:run_sweep",
    "run_compare": "edgenas.deploy.compare:run_compare",
    "run_deploy": "edgenas.deploy.deploy:run_deploy",
    "build_lut": "edgenas.latency.api:build_lut",
    "validate_lut": "edgenas.latency.api:validate_lut",
    "profile_target": "edgenas.models.profile:profile_target",
}

__all__ = ["ENTRY_POINTS", "__version__", *ENTRY_POINTS]


def __getattr__(name: str):
    if name in ENTRY_POINTS:
        module, attr = ENTRY_POINTS[name].split(":")
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'edgenas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(ENTRY_POINTS))
