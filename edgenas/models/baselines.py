"""Hand-designed baselines, built without pretrained weights.

Names: ``mobilenet_v2``, ``mobilenet_v3_small``, ``efficientnet_b0`` (torchvision's), and the
hand-made CNNs of :mod:`edgenas.models.cnns`, ``resnet20`` and ``fast_cnn``; a width
suffix in timm's style is accepted as an alias, ``mobilenet_v2_035`` (three
digits, hundredths) or ``mobilenet_v2_0.35`` meaning width 0.35.

Small inputs (``resolution <= SMALL_INPUT_MAX``, e.g. CIFAR's 32x32): the
ImageNet stem downsamples 32x, which leaves a 1x1 map at 32x32. As CIFAR ports
do, we remove part of that early downsampling:

* all three: the stem conv ``features[0][0]`` gets stride 1 instead of 2;
* MobileNetV2 also: the first stride-2 inverted-residual stage (t=6, c=24,
  ``features[2]``) gets stride 1, as in the common CIFAR port
  (kuangliu/pytorch-cifar ``models/mobilenetv2.py``, cfg ``(6, 24, 2, 1)``).

Overall stride at small inputs: MobileNetV2 8 (32x32 -> 4x4),
MobileNetV3-Small and EfficientNet-B0 16 (32x32 -> 2x2). At larger inputs the
torchvision model is returned untouched (only ``num_classes`` and the width
differ).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from edgenas.errors import ConfigError, UnknownNameError
from bench.registry import Registry

__all__ = ["BASELINES", "SMALL_INPUT_MAX", "build_baseline", "resolve_baseline"]

#: Resolutions up to this (pixels) get the small-input stem.
SMALL_INPUT_MAX = 64

# A builder takes (num_classes, width, small_input) and returns a fresh model.
Builder = Callable[[int, float, bool], nn.Module]

BASELINES: Registry[Builder] = Registry("baseline")

# "_035" (hundredths, timm's spelling) or "_0.35" at the end of a name.
_WIDTH_SUFFIX = re.compile(r"^(?P<base>.+)_(?:(?P<hundredths>\d{3})|(?P<decimal>\d+\.\d+))$")


def _stem_stride_one(model: nn.Module) -> None:
    """Set the stride of the stem conv (``features[0][0]`` in torchvision) to 1."""
    stem = model.features[0][0]
    # Guards against a torchvision layout change silently adapting the wrong layer.
    assert isinstance(stem, nn.Conv2d) and stem.in_channels == 3 and stem.stride == (2, 2), stem
    stem.stride = (1, 1)


@BASELINES.register("mobilenet_v2")
def _mobilenet_v2(num_classes: int, width: float, small_input: bool) -> nn.Module:
    """MobileNetV2 (Sandler et al., CVPR 2018, arXiv:1801.04381)."""
    from torchvision.models.mobilenetv2 import MobileNetV2

    # torchvision's default setting; rows are (expansion t, channels c, repeats n, stride s).
    setting = [
        [1, 16, 1, 1],
        [6, 24, 2, 1 if small_input else 2],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 2],
        [6, 320, 1, 1],
    ]
    model = MobileNetV2(num_classes=num_classes, width_mult=width, inverted_residual_setting=setting)
    if small_input:
        _stem_stride_one(model)
    return model


@BASELINES.register("mobilenet_v3_small")
def _mobilenet_v3_small(num_classes: int, width: float, small_input: bool) -> nn.Module:
    """MobileNetV3-Small (Howard et al., ICCV 2019, arXiv:1905.02244)."""
    from torchvision.models import mobilenetv3

    if width == 1.0:
        model = mobilenetv3.mobilenet_v3_small(weights=None, num_classes=num_classes)
    else:
        # The private config builder is the only way to a width multiplier.
        conf = getattr(mobilenetv3, "_mobilenet_v3_conf", None)
        if conf is None:
            raise ConfigError("this torchvision has no _mobilenet_v3_conf; mobilenet_v3_small needs width 1.0")
        setting, last_channel = conf("mobilenet_v3_small", width_mult=width)
        model = mobilenetv3.MobileNetV3(setting, last_channel, num_classes=num_classes)
    if small_input:
        _stem_stride_one(model)
    return model


@BASELINES.register("efficientnet_b0")
def _efficientnet_b0(num_classes: int, width: float, small_input: bool) -> nn.Module:
    """EfficientNet-B0 (Tan and Le, ICML 2019, arXiv:1905.11946)."""
    from torchvision.models import efficientnet

    if width == 1.0:
        model = efficientnet.efficientnet_b0(weights=None, num_classes=num_classes)
    else:
        conf = getattr(efficientnet, "_efficientnet_conf", None)
        if conf is None:
            raise ConfigError("this torchvision has no _efficientnet_conf; efficientnet_b0 needs width 1.0")
        setting, last_channel = conf("efficientnet_b0", width_mult=width, depth_mult=1.0)
        # Dropout 0.2 is torchvision's (and the paper's) value for B0.
        model = efficientnet.EfficientNet(setting, 0.2, last_channel=last_channel, num_classes=num_classes)
    if small_input:
        _stem_stride_one(model)
    return model


def resolve_baseline(name: str) -> tuple[str, float | None]:
    """Split a baseline name into its registered name and the width of its alias.

    Examples:
        >>> resolve_baseline("mobilenet_v2")
        ('mobilenet_v2', None)
        >>> resolve_baseline("mobilenet_v2_035")
        ('mobilenet_v2', 0.35)

    Raises:
        UnknownNameError: neither the name nor its base is registered; the
            message lists close matches.
    """
    if name in BASELINES:
        return name, None
    match = _WIDTH_SUFFIX.match(name)
    if match and match["base"] in BASELINES:
        width = int(match["hundredths"]) / 100 if match["hundredths"] else float(match["decimal"])
        return match["base"], width
    raise UnknownNameError(BASELINES.unknown_message(name))


def build_baseline(
    name: str,
    num_classes: int = 10,
    width: float | None = None,
    resolution: int = 32,
) -> nn.Module:
    """Build a randomly initialised baseline network.

    Args:
        name: a name of :data:`BASELINES`, optionally with a width suffix
            (``mobilenet_v2_035``).
        num_classes: outputs of the classifier.
        width: channel width multiplier; None means the alias's width, else 1.0.
        resolution: input side in pixels the model is meant for; at most
            :data:`SMALL_INPUT_MAX` selects the small-input stem (see module
            docstring). The model accepts other sizes too.

    Returns:
        An ``nn.Module`` mapping ``(N, 3, H, W)`` images to ``(N, num_classes)`` logits.

    Raises:
        UnknownNameError: unknown name (close matches listed).
        ConfigError: non-positive ``num_classes``, ``width`` or ``resolution``,
            or a ``width`` that contradicts the alias's.
    """
    base, alias_width = resolve_baseline(name)
    if width is not None and alias_width is not None and width != alias_width:
        raise ConfigError(f"{name!r} means width {alias_width}, but width={width} was given; pass one of them")
    width = width if width is not None else (alias_width if alias_width is not None else 1.0)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive int, got {num_classes!r}")
    if not width > 0:
        raise ConfigError(f"width must be positive, got {width!r}")
    if not isinstance(resolution, int) or resolution < 1:
        raise ConfigError(f"resolution must be a positive int, got {resolution!r}")
    return BASELINES.get(base)(num_classes, float(width), resolution <= SMALL_INPUT_MAX)


@BASELINES.register("resnet20")
def _resnet20(num_classes: int, width: float, small_input: bool) -> nn.Module:
    """The CIFAR ResNet-20 (He et al., CVPR 2016): :class:`edgenas.models.cnns.ResNet20`."""
    from edgenas.models.cnns import ResNet20

    return ResNet20(num_classes, width)


@BASELINES.register("fast_cnn")
def _fast_cnn(num_classes: int, width: float, small_input: bool) -> nn.Module:
    """A plain fast-training CNN that fills the default budget: :class:`edgenas.models.cnns.FastCNN`."""
    from edgenas.models.cnns import FastCNN

    return FastCNN(num_classes, width)
