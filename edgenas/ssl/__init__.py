"""Self-supervised objectives: pure loss functions plus thin ``nn.Module`` wrappers.

``SSL_METHODS`` maps a name to a factory ``f(**options) -> nn.Module`` whose
``forward(z1, z2)`` takes the projections of two views and returns a scalar
loss (Barlow Twins, NT-Xent). DINO (teacher-student, multi-crop) and rotation
prediction have their own interfaces (:mod:`edgenas.ssl.dino`,
:mod:`edgenas.ssl.rotation`); the evolution strategy combines them.
"""

from edgenas.ssl.barlow import BarlowTwinsLoss, barlow_twins_loss
from edgenas.ssl.dino import DINOHead, DINOLoss, dino_loss
from edgenas.ssl.ntxent import NTXentLoss, nt_xent_loss
from edgenas.ssl.registry import SSL_METHODS
from edgenas.ssl.rotation import RotationHead, rotate_batch, rotation_loss

__all__ = ["SSL_METHODS", "two_view_loss", "BarlowTwinsLoss", "DINOHead", "DINOLoss", "NTXentLoss", "RotationHead",
           "barlow_twins_loss", "dino_loss", "nt_xent_loss", "rotate_batch", "rotation_loss"]


def two_view_loss(name: str, cfg) -> "BarlowTwinsLoss | NTXentLoss":
    """The two-view loss ``name`` with its options from a search config (``bt_lambda``, ``ntxent_temperature``)."""
    options = {"barlow": {"lambda_offdiag": cfg.bt_lambda}, "ntxent": {"temperature": cfg.ntxent_temperature}}
    return SSL_METHODS.get(name)(**options.get(name, {}))
