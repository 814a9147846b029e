"""Numpy rendering of the ten geometric shapes and the textures of the synthetic set.

Pure functions on coordinate grids, no state: every random choice comes from
the ``numpy.random.Generator`` passed in, so one image depends only on how that
generator was seeded. Coordinates are normalised: the image spans [-1, 1] on
both axes, ``y`` pointing down; a shape of radius ``r`` fits in a circle of
radius ``r`` around its centre.

Edges are antialiased analytically: each shape has an approximate signed
distance (negative inside, in shape-local units), turned into a coverage
``clip(0.5 - distance_px, 0, 1)``; that is cheaper than supersampling and
keeps 32-pixel shapes recognisable.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "ellipse",
    "diamond",
    "hexagon",
    "bar",
)
"""Class names; the label of a shape is its index here."""

# Shapes that look the same at any orientation get a free rotation; the others
# only a small jitter, so that a square never turns into a diamond.
_FREE_ROTATION = frozenset({CLASSES.index("ellipse"), CLASSES.index("bar")})
_ROTATION_JITTER_RAD = np.deg2rad(15.0)


@lru_cache(maxsize=8)
def pixel_grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, each float32 [R, R] in (-1, 1); read-only, cached."""
    axis = ((np.arange(resolution, dtype=np.float32) + 0.5) / resolution) * 2.0 - 1.0
    ys, xs = np.meshgrid(axis, axis, indexing="ij")
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


def _box(u: np.ndarray, v: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    return np.maximum(np.abs(u) - half_w, np.abs(v) - half_h)


def _polygon(rho: np.ndarray, phi: np.ndarray, sides: int, circumradius: float) -> np.ndarray:
    # Distance to the nearest edge line of a regular polygon with a vertex at
    # phi = -pi/2 (pointing up); exact inside, a slight overestimate outside.
    sector = 2.0 * np.pi / sides
    local = np.mod(phi + np.pi / 2.0, sector) - sector / 2.0
    return rho * np.cos(local) - circumradius * np.cos(np.pi / sides)


def shape_distance(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance to shape ``label`` in local units (radius 1).

    Args:
        label: class index into :data:`CLASSES`.
        u, v: float32 [R, R] local coordinates (already centred, rotated, scaled).

    Returns:
        float32 [R, R], negative inside the shape.
    """
    name = CLASSES[label]
    if name in ("circle", "ring", "triangle", "star", "hexagon"):
        rho = np.sqrt(u * u + v * v)
    if name in ("triangle", "star", "hexagon"):
        phi = np.arctan2(v, u)
    if name == "circle":
        return rho - 0.9
    if name == "square":
        return _box(u, v, 0.72, 0.72)
    if name == "triangle":
        return _polygon(rho, phi, 3, 1.0)
    if name == "star":
        sector = 2.0 * np.pi / 5.0
        t = np.abs(np.mod(phi + np.pi / 2.0, sector) / sector * 2.0 - 1.0)  # 1 at tips
        return (rho - (0.42 + 0.58 * t)) * 0.6
    if name == "cross":
        return np.minimum(_box(u, v, 0.95, 0.28), _box(u, v, 0.28, 0.95))
    if name == "ring":
        return np.maximum(rho - 0.95, 0.55 - rho)
    if name == "ellipse":
        return (np.sqrt(u * u + (v / 0.5) ** 2) - 1.0) * 0.5
    if name == "diamond":
        return (np.abs(u) / 0.62 + np.abs(v) - 1.0) * 0.53
    if name == "hexagon":
        return _polygon(rho, phi, 6, 0.92)
    if name == "bar":
        return _box(u, v, 1.0, 0.2)
    raise AssertionError(f"no distance function for class {name!r}")


def shape_coverage(
    label: int,
    xs: np.ndarray,
    ys: np.ndarray,
    center: tuple[float, float],
    radius: float,
    angle: float,
) -> np.ndarray:
    """Antialiased coverage in [0, 1] of one shape, float32 [R, R].

    Args:
        xs, ys: float32 [R, R] image coordinates (see :func:`pixel_grid`).
        center: (x, y) in normalised units.
        radius: shape radius in normalised units (1 = half the image width).
        angle: rotation in radians.
    """
    resolution = xs.shape[-1]
    c, s = np.cos(angle), np.sin(angle)
    dx = xs - np.float32(center[0])
    dy = ys - np.float32(center[1])
    inv_r = np.float32(1.0 / radius)
    u = (dx * np.float32(c) + dy * np.float32(s)) * inv_r
    v = (dy * np.float32(c) - dx * np.float32(s)) * inv_r
    distance_px = shape_distance(label, u, v) * np.float32(radius * resolution / 2.0)
    return np.clip(0.5 - distance_px, 0.0, 1.0)


def random_angle(label: int, rng: np.random.Generator) -> float:
    """Orientation of a shape: free for rotation-symmetric classes, jittered otherwise."""
    if label in _FREE_ROTATION:
        return float(rng.uniform(0.0, np.pi))
    return float(rng.uniform(-_ROTATION_JITTER_RAD, _ROTATION_JITTER_RAD))


def random_colour(rng: np.random.Generator, away_from: np.ndarray | None = None) -> np.ndarray:
    """An RGB colour in [0, 1], float32 [3], at least 0.45 (RGB distance) from ``away_from``.

    The distance keeps every shape visible against its background; a few
    rejection tries, then the complementary colour as a fallback.
    """
    for _ in range(8):
        colour = rng.random(3, dtype=np.float32)
        if away_from is None:
            return colour
        diff = colour - away_from
        if float(diff @ diff) >= 0.45**2:
            return colour
    return (1.0 - away_from).astype(np.float32)


def grating_textures(
    rng: np.random.Generator,
    resolution: int,
    bases: np.ndarray,
    scene_angle: float = 0.0,
    n_gratings: int = 3,
    amplitude: float = 0.22,
) -> np.ndarray:
    """Colours plus sums of sinusoidal gratings, float32 [T, 3, R, R] (unclipped).

    Each grating has its own frequency (1 to 6 cycles over the image, so the
    scales differ), orientation, phase and colour direction.

    Args:
        bases: float32 [T, 3] base colours, one texture each.
        scene_angle: rotation of the scene in radians (folded into the
            grating directions, so the grid never needs resampling).

    Why separable: sin(y_term + x_term) = sin(y) cos(x) + cos(y) sin(x), so a
    texture is a [R, 2K] @ [2K, R] matrix product of per-axis vectors, with
    sin/cos of [T, K, R] only; much cheaper than sin of every pixel.
    """
    count = bases.shape[0]
    shape = (count, n_gratings)
    freq = rng.uniform(np.pi, 6.0 * np.pi, shape)
    theta = rng.uniform(0.0, np.pi, shape) - scene_angle
    phase = rng.uniform(0.0, 2.0 * np.pi, shape)
    colour_dirs = rng.uniform(-amplitude, amplitude, (count, 3, n_gratings)) / n_gratings**0.5
    axis = pixel_grid(resolution)[0][0].astype(np.float64)
    x_term = (freq * np.cos(theta))[..., None] * axis  # [T, K, R]
    y_term = (freq * np.sin(theta))[..., None] * axis + phase[..., None]
    along_y = np.concatenate([np.sin(y_term), np.cos(y_term)], axis=1)  # [T, 2K, R]
    along_x = np.concatenate([np.cos(x_term), np.sin(x_term)], axis=1)  # [T, 2K, R]
    weights = np.concatenate([colour_dirs, colour_dirs], axis=2)  # [T, 3, 2K]
    left = (weights[:, :, :, None] * along_y[:, None]).transpose(0, 1, 3, 2)  # [T, 3, R, 2K]
    texture = np.matmul(left.astype(np.float32), along_x[:, None].astype(np.float32))
    texture += bases[:, :, None, None]
    return texture


@lru_cache(maxsize=8)
def _clamped_shifts(resolution: int, radius: int) -> np.ndarray:
    """float32 [2*radius+1, R, R]: row i of slice k picks pixel clip(i + k - radius)."""
    rows = np.arange(resolution)
    shifts = np.zeros((2 * radius + 1, resolution, resolution), dtype=np.float32)
    for k in range(2 * radius + 1):
        shifts[k, rows, np.clip(rows + k - radius, 0, resolution - 1)] = 1.0
    shifts.flags.writeable = False
    return shifts


def gaussian_blur(image: np.ndarray, sigma_px: float, radius: int = 2) -> np.ndarray:
    """Separable Gaussian blur of float32 [3, R, R] with edge clamping.

    The blur is two [R, R] matrix products (rows, then columns): at these
    sizes that is far cheaper than padding and shifting.
    """
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(taps**2) / np.float32(2.0 * sigma_px**2))
    kernel /= kernel.sum()
    size = image.shape[-1]
    matrix = (kernel @ _clamped_shifts(size, radius).reshape(2 * radius + 1, -1)).reshape(size, size)
    return matrix @ image @ matrix.T
