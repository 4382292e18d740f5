"""Hole and match-field geometry shared by every level: which patches may be copied from, how thick a hole
is, a frame at a level's side, and match fields moved from one grid to another.

A match field holds, for every target position, the flat index (y * W + x) of its source position on a
grid of W columns, and -1 where it has none.
"""
import torch
import torch.nn.functional as F

from .masks import dilate, downscale_mask

CELL = 4  # frame pixels per relu3_1 position
# A level is worked only where the hole reaches at least this many of its pixels from edge to middle: a thin
# stroke shrunk further is a line a pixel or two wide, whose fill is decided by patches many times its
# width, and what it loses there (a thin pole crossing it, fine grain along it) the finer levels do not get
# back. The first guess's pyramid and the pipeline's levels follow the same rule.
MIN_LEVEL_RADIUS = 3


def mask_box(mask):
    """(y0, y1, x0, x1): the bounding box of a bool mask [H, W] with at least one True."""
    ys, xs = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def grow_box(box, by, shape):
    """box (y0, y1, x0, x1) grown by `by` on every side and clipped to a grid of shape (H, W)."""
    y0, y1, x0, x1 = box
    H, W = shape
    return max(0, y0 - by), min(H, y1 + by), max(0, x0 - by), min(W, x1 + by)


def source_centres(hole, inside, radius, zero_padded=False):
    """Where a (2 * radius + 1)-square source patch may be centred: the patch lies wholly outside the hole
    and inside the photo (never on the frame's reflected padding). The one rule for every search that
    copies: the optimisation's deep matches, the pixel step and the first guess.
    Past the grid's edge: a colour patch must stay inside the frame, since the vote reads all of its
    pixels; a feature patch (zero_padded) may reach past it, where the texture ops read zeros, as patch_nn
    pads every map and VGG pads the frame."""
    centres = ~dilate(hole | ~inside, radius)
    if not zero_padded:
        within = torch.zeros_like(hole)
        within[radius:hole.shape[0] - radius, radius:hole.shape[1] - radius] = True
        centres &= within
    return centres


def level_view(rgb, hole, inside, side):
    """(known, hole, inside) of a frame at `side`: the colours averaged down, the hole grown to every pixel it
    touches, and inside shrunk to the pixels wholly inside the photo."""
    return at_side(rgb, side), downscale_mask(hole, side), ~downscale_mask(~inside, side)


def at_side(x, side):
    """A [C, n, n] map averaged down to side x side (itself at its own side)."""
    return x if x.shape[-1] == side else F.interpolate(x[None], size=(side, side), mode="area")[0]


def hole_radius(hole, cap=None):
    """How many pixels the hole reaches from its edge to its middle: the number of 3x3 erosions that empty
    it (a 14-px brush stroke: 7; a 256-px box: 128); at most `cap` (None: no cap), so a caller that only
    asks whether the hole is that thick need not erode a large hole to its middle."""
    radius, core = 0, hole
    while (cap is None or radius < cap) and core.any():
        core = -F.max_pool2d(-core[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
        radius += 1
    return radius


def thick_enough(radius, side, n):
    """Whether a hole `radius` pixels from edge to middle in an n-px frame is still at least MIN_LEVEL_RADIUS
    pixels from edge to middle at a level of `side` px."""
    return radius * side / n >= MIN_LEVEL_RADIUS


def cells_to_pixels(cell_field, n):
    """A relu3_1 match field (flat source cells on an n/CELL grid) at pixel resolution for an n x n frame:
    each pixel is matched to the same offset inside its cell's source cell."""
    Hc, Wc = cell_field.shape
    ys = torch.arange(n, device=cell_field.device)
    src = cell_field[(ys // CELL).clamp(max=Hc - 1)][:, (ys // CELL).clamp(max=Wc - 1)]
    sy = (src // Wc) * CELL + (ys % CELL)[:, None]
    sx = (src % Wc) * CELL + (ys % CELL)[None, :]
    return torch.where((src >= 0) & (sy < n) & (sx < n), sy * n + sx, torch.full_like(src, -1))


def upsample_field(field, source_shape):
    """A match field at twice the resolution, its sources on a grid of source_shape: each target cell takes
    its parent's match moved to the corresponding child source cell (-1 where that falls outside)."""
    H, W = field.shape
    Hs, Ws = source_shape
    up = field.repeat_interleave(2, 0).repeat_interleave(2, 1)
    dy = torch.arange(2 * H, device=field.device)[:, None] % 2
    dx = torch.arange(2 * W, device=field.device)[None, :] % 2
    sy = (up // (Ws // 2)) * 2 + dy
    sx = (up % (Ws // 2)) * 2 + dx
    ok = (up >= 0) & (sy < Hs) & (sx < Ws)
    return torch.where(ok, sy * Ws + sx, torch.full_like(up, -1))
