"""Name -> SSL loss factory."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from bench.registry import Registry

SSL_METHODS: Registry[Callable[..., nn.Module]] = Registry("ssl method")
