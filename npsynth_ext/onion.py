"""Onion-peel fill: the hole grown from its edge inward, one ring of pixels at a time, each pixel a copy of
a pixel of the photo. It starts the first guess's coarsest level (first_guess.py).

Each ring is the hole pixels that touch (8-neighbours) a known or already filled pixel. Every pixel of the
ring takes the centre of the source patch (PATCH x PATCH, wholly known and inside the photo) closest to
its own patch by mean squared colour difference over the pixels of its patch that are known or filled. A
ring is matched all at once, so the result does not depend on an order of visits; of sources that fit
equally well (within TIE), the nearest wins: a patch's known pixels may be too few to tell its centre, as
below a straight edge, and a near copy continues its surroundings best. A membrane's colours are averages
of the whole edge (a white cup rim beside a red saucer gives a brown that no surface of the photo has, and
the first matches then copy whatever is brown); here each pixel continues what lies next to it, with the
photo's own colours.

Exact search costs ring pixels x sources per ring: ONION_MAX_SIDE bounds the level it is used at.
"""
import torch
import torch.nn.functional as F

from .fields import source_centres
from .membrane import membrane
from .pixels import PATCH

ONION_MAX_SIDE = 64  # larger levels (a thin hole's prior starts at its frame's side) start from a membrane
# Distances within TIE of a ring pixel's best count as equal fits. One 8-bit step in one channel at one of
# at most 48 counted pixels changes a distance by at least (1/255)^2 / 48 = 3.2e-7; float64 rounding of
# the distances (sums of ~150 terms of at most 3) stays below 1e-12.
TIE = 1e-9


def onion_fill(values, known, sources_ok):
    """values [C, H, W], known [H, W] (the pixels to keep), sources_ok [H, W] (where a source patch may lie:
    known pixels inside the photo). Returns values with every pixel that is not known filled ring by ring;
    the membrane fill where no source patch exists."""
    C, H, W = values.shape
    r = PATCH // 2
    if known.all() or H < PATCH or W < PATCH:
        return membrane(values, known)
    # Centres of wholly known, allowed patches, on the unfold grid of centres.
    whole = source_centres(~known, sources_ok, r)[r:H - r, r:W - r]
    if not bool(whole.any()):
        return membrane(values, known)
    values64 = values.double()
    at = whole.flatten().nonzero().flatten()
    patches = F.unfold(values64[None], PATCH)[0][:, at].T  # [sources, C * PATCH^2]
    source_y, source_x = at // (W - 2 * r) + r, at % (W - 2 * r) + r
    centres = patches.view(-1, C, PATCH * PATCH)[:, :, PATCH * PATCH // 2]  # [sources, C]
    squares = patches.pow(2).view(-1, C, PATCH * PATCH).sum(1)  # [sources, PATCH^2]
    x = torch.where(known, values64, torch.zeros_like(values64))
    filled = known.clone()
    while not bool(filled.all()):
        ring = (F.max_pool2d(filled[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0) & ~filled
        t = ring.flatten().nonzero().flatten()
        windows = F.unfold(F.pad(x[None], (r, r, r, r)), PATCH)[0][:, t].T.reshape(len(t), C, PATCH * PATCH)
        weights = F.unfold(F.pad(filled.double()[None, None], (r, r, r, r)), PATCH)[0][:, t].T
        # sum over counted pixels of (target - source)^2, less the target's own squares (the same for every
        # source, so the order of the sources and the gaps between their distances stay), divided by how
        # many pixels count.
        cross = (windows * weights[:, None]).reshape(len(t), -1) @ patches.T
        dist = (weights @ squares.T - 2 * cross) / weights.sum(1, keepdim=True)
        near = ((t // W)[:, None] - source_y[None, :]) ** 2 + ((t % W)[:, None] - source_x[None, :]) ** 2
        equal = dist <= dist.min(1, keepdim=True).values + TIE
        best = torch.where(equal, near, torch.iinfo(near.dtype).max).argmin(1)
        x.view(C, -1)[:, t] = centres[best].T  # x is this function's own tensor
        filled = filled | ring
    return x.to(values.dtype)


def onion_start(known_rgb, hole, inside):
    """The coarsest level's start for the first guess: the onion-peel fill of the hole from sources inside
    the photo, on levels up to ONION_MAX_SIDE; the membrane fill on larger ones."""
    if max(known_rgb.shape[-2:]) > ONION_MAX_SIDE:
        return membrane(known_rgb, ~hole)
    return onion_fill(known_rgb, ~hole, inside)
