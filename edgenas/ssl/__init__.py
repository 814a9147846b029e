"""Self-supervised objectives: pure loss functions plus thin ``nn.Module`` wrappers.

``SSL_METHODS`` maps a name to a factory ``f(**options) -> nn.Module`` whose
``forward(z1, z2)`` takes the projections of two views and returns a scalar loss.
"""

from edgenas.ssl.barlow import BarlowTwinsLoss, barlow_twins_loss
from edgenas.ssl.registry import SSL_METHODS

__all__ = ["SSL_METHODS", "BarlowTwinsLoss", "barlow_twins_loss"]
