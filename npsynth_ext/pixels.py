"""The pixel step: rebuild the hole from real pixels of the photo, guided by the image it is given.

An optimised hole is a compromise of the matched VGG patches that overlap it: softer than the photo, and
where matches disagree, a see-through blend of both. The pixel step makes it of the photo's own pixels.
Given a pixel match field to start from (one source pixel per hole pixel, -1 where none), a few
expectation-maximisation rounds (Wexler et al. 2007) alternate:

- PatchMatch on PATCH x PATCH colour patches of the current image: a match must agree with the guide and
  with the known pixels its patch overlaps;
- a vote: every hole pixel takes the weighted mean of the source pixels that the patches covering it point
  to; a patch's weight falls steeply with its distance, so one good match outvotes poor ones rather than
  blending with them.

The patch distance also compares roughness features (Newson et al. 2014's texture features: the local mean
absolute difference between neighbours, measured at the frame's own resolution and averaged down to each
level). The sources' are known; the hole's are voted through the matches with the colours. Without them a
blurred guide is matched best by smooth copies, and faint texture (grain, vessels, stars) washes out into
flat areas level after level.

The last vote can be blended in the gradient domain (blend.py): the same patches vote the differences
between neighbouring source pixels, and the hole is solved to follow them, so copies that meet, and the
hole's edge, join without a visible step. Only hole pixels change; sources are fields.source_centres.
"""
import torch
import torch.nn.functional as F

from .blend import differences, screened_poisson
from .fields import source_centres
from .masks import dilate
from .membrane import membrane
from .ops import patchmatch

PATCH = 7
PIXEL_ITERS = 2  # PatchMatch iterations per round: the matches start close, from a field handed on
# A patch's vote at a pixel is weighted by exp(-(distance - the best covering distance) / (sharpness *
# median distance)): at the levels' PIXEL_SHARPNESS the best of the overlapping matches decides the pixel,
# and the gradient-domain blend hides where copies meet.
PIXEL_SHARPNESS = 0.05
# Scale of the roughness features next to the colours in the pixel distance (colours and roughness both in
# 0..1 units; the distance is squared, so roughness differences count ROUGHNESS^2 times): the default of
# FillOptions.pixel_roughness, and the first guess's whatever that option says.
ROUGHNESS = 3.0
MAX_EXPONENT = 40.0  # exp(-40) ~ 4e-18: far from float32's smallest normal, 1e-38


def roughness(rgb, known):
    """How rough the photo is around each pixel ([2, H, W]): the mean absolute difference between
    horizontal (first channel) and vertical (second) neighbours, over colour channels and over the pairs of
    known pixels whose left (upper) pixel lies in the PATCH x PATCH window around it (0 where there are
    none)."""
    k = known.to(rgb.dtype)
    vx, vy = k[:, 1:] * k[:, :-1], k[1:, :] * k[:-1, :]  # pairs of known neighbours
    dx, dy = differences(rgb)
    pairs = torch.stack([F.pad(vx, (0, 1)), F.pad(vy, (0, 0, 0, 1))])
    sums = torch.stack([F.pad(dx.abs().mean(0) * vx, (0, 1)), F.pad(dy.abs().mean(0) * vy, (0, 0, 0, 1))])
    box = torch.ones(2, 1, PATCH, PATCH, dtype=rgb.dtype, device=rgb.device)
    num = F.conv2d(sums[None], box, padding=PATCH // 2, groups=2)[0]
    den = F.conv2d(pairs[None], box, padding=PATCH // 2, groups=2)[0]
    return torch.where(den > 0.5, num / den.clamp_min(1), torch.zeros_like(num))


def frame_roughness(rgb, hole, inside, scale):
    """scale x roughness of a frame's known pixels inside the photo; where the frame is padded beyond the
    photo, and in the hole, the membrane fill of it, so patches that reach into the padding compare
    roughness that continues the photo's rather than a flat 0."""
    known = ~hole & inside
    return membrane(scale * roughness(rgb, known), known)  # the membrane keeps the known pixels' values


def patch_offsets(width, device=None):
    """The flat offsets of a PATCH x PATCH patch's pixels from its centre, on a grid `width` wide, row by row."""
    offsets = torch.arange(-(PATCH // 2), PATCH // 2 + 1, device=device)
    return (offsets[:, None] * width + offsets[None, :]).flatten()


class PatchFolder:
    """Weighted means of per-patch values laid over the frame: each target patch (centre t, flat in an
    n x n frame) spreads its PATCH x PATCH values with its weights; pixels that no weight reaches keep
    `fallback`. t must be sorted and without repeats, as nonzero() gives it."""

    def __init__(self, t, n):
        r = PATCH // 2
        self.n = n
        ty, tx = t // n, t % n
        # The targets' bounding box grown by r holds every pixel their patches cover.
        self.y0, self.x0 = int(ty.min()) - r, int(tx.min()) - r
        self.h, self.w = int(ty.max()) + r + 1 - self.y0, int(tx.max()) + r + 1 - self.x0
        self.local = (ty - self.y0 - r) * (self.w - 2 * r) + (tx - self.x0 - r)
        # Targets that fill their box (a box-shaped hole's): t is sorted, so local is then every column in
        # order, and the columns are the values themselves, with no zeros to lay down or scatter into.
        self.dense = len(t) == (self.h - 2 * r) * (self.w - 2 * r)

    def __call__(self, values, weights, fallback):
        """values [C, PATCH^2, targets], weights [PATCH^2, targets] -> [C, n, n]."""
        r, n = PATCH // 2, self.n
        C = values.shape[0]
        if self.dense:
            cols = torch.cat([(values * weights).flatten(0, 1), weights])
        else:
            cols = values.new_zeros((C + 1) * PATCH * PATCH, (self.h - 2 * r) * (self.w - 2 * r))
            cols[: C * PATCH * PATCH, self.local] = (values * weights).flatten(0, 1)
            cols[C * PATCH * PATCH:, self.local] = weights
        sums = F.fold(cols[None], (self.h, self.w), PATCH)[0]  # [C + 1, h, w]: weighted sums, then weights
        ys = slice(max(self.y0, 0), min(self.y0 + self.h, n))
        xs = slice(max(self.x0, 0), min(self.x0 + self.w, n))
        inner = (slice(ys.start - self.y0, ys.stop - self.y0), slice(xs.start - self.x0, xs.stop - self.x0))
        num = torch.zeros_like(fallback)
        den = fallback.new_zeros(n, n)
        num[:, ys, xs] = sums[:C][(slice(None), *inner)]
        den[ys, xs] = sums[C][inner]
        return torch.where(den > 0, num / den.clamp_min(1e-30), fallback)


class PixelMatcher:
    """The targets (centres of patches that touch the hole) and sources (patches wholly known and inside
    the photo) of one scale's frame."""

    def __init__(self, hole, inside, roughness=None):
        r = PATCH // 2
        self.hole, self.inside = hole, inside
        # Weighted roughness features of the photo (known pixels; None: colour alone), and the hole's current
        # estimate of them, voted through the matches like the colours.
        self.roughness = roughness
        self.rough_now = None
        self.targets = dilate(hole, r) & inside
        self.sources = source_centres(hole, inside, r)  # the vote reads all of a source patch
        self.usable = bool(self.sources.any())

    def match(self, rgb, index, iters, seed):
        """PatchMatch of the current image's patches from `index` (entries that are no valid source start
        at random); iters=0 only measures the given matches. With roughness, the first call also starts the
        hole's roughness from `index` (seed_roughness) unless smooth_roughness started it."""
        rgb = rgb.contiguous()
        if index is None:  # every target starts at random
            index = torch.full(self.targets.shape, -1, dtype=torch.int64, device=rgb.device)
        index = torch.where(self.targets, index, -1)
        target, source = rgb, rgb
        if self.roughness is not None:
            if self.rough_now is None:
                self.rough_now = self.seed_roughness(index)
            target = torch.cat([rgb, self.rough_now])
            source = torch.cat([rgb, self.roughness])
        return patchmatch(target, source, self.targets, self.sources, PATCH, "l2", init_index=index, iters=iters,
                          radius=0, seed=seed)

    def smooth_roughness(self):
        """Start the hole's roughness as the membrane fill of its surroundings' (as rough as the photo around
        it, smoothly in between), not from matches that may have put structure where the guide is smooth."""
        if self.roughness is not None:
            self.rough_now = torch.where(self.hole, membrane(self.roughness, ~self.hole & self.inside),
                                         self.roughness)

    def seed_roughness(self, index):
        """The hole's roughness before any vote: the plain mean over the source pixels that the valid matches
        of `index` covering it point to (the sources' mean where none does)."""
        n = index.shape[-1]
        rough = self.roughness
        ok = self.targets & (index >= 0) & (index < n * n)
        ok &= self.sources.flatten()[index.clamp(0, n * n - 1)]  # starts that are no source: none, as in patchmatch
        mean = rough[:, self.sources].mean(1)[:, None, None].expand_as(rough)
        if not bool(ok.any()):
            return torch.where(self.hole, mean, rough)
        t = ok.flatten().nonzero().flatten()
        at = index.flatten()[t][None, :] + patch_offsets(n, index.device)[:, None]
        voted = PatchFolder(t, n)(rough.flatten(1)[:, at], rough.new_ones(PATCH * PATCH, len(t)), mean)
        return torch.where(self.hole, voted, rough)

    def vote(self, rgb, index, dist, sharpness, blend=False):
        """Each hole pixel: the weighted mean of the source pixels that the matched patches covering it
        point to. A patch's weight at a pixel is exp(-(dist - best) / (sharpness * median dist)), best being
        the smallest distance among the patches covering that pixel, and at least exp(-MAX_EXPONENT): the
        best match decides, and where every covering match is poor the best of them still does, rather than
        all of them averaging into a smear.
        blend: the same patches also vote the differences between neighbouring source pixels inside them,
        and the hole becomes the gradient-domain blend of both votes (blend.screened_poisson), so copies
        that meet, and the hole's edge, join without a step."""
        n = rgb.shape[-1]
        r = PATCH // 2
        flat = rgb.flatten(1)
        t = self.targets.flatten().nonzero().flatten()
        m = index.flatten()[t]
        d = dist.flatten()[t]
        at = m[None, :] + patch_offsets(n, rgb.device)[:, None]  # [PATCH^2, targets]: the sources' pixels
        # The best distance covering each pixel, on the frame padded by r (target patches may stick out).
        side = n + 2 * r
        padded = (t // n + r) * side + (t % n + r)
        spread = d.new_full((side * side,), float("inf"))
        spread[padded] = d
        best = -F.max_pool2d(-spread.view(1, 1, side, side), PATCH, stride=1, padding=r).flatten()
        covered = padded[None, :] + patch_offsets(side, rgb.device)[:, None]
        scale = sharpness * d.median().clamp_min(1e-12)
        w = torch.exp(-((d[None, :] - best[covered]) / scale).clamp(max=MAX_EXPONENT))  # [PATCH^2, targets]
        fold = PatchFolder(t, n)
        colour = torch.where(self.hole, fold(flat[:, at], w, rgb), rgb)
        if self.roughness is not None:
            self.rough_now = torch.where(self.hole, fold(self.roughness.flatten(1)[:, at], w, self.roughness),
                                         self.roughness)
        if not blend:
            return colour
        # Differences to the right (below) neighbour, on the frame's grid (0 past the last column, row),
        # voted by the patch pixels whose neighbour is in the patch too: a source patch is wholly known, so
        # these are the photo's own differences.
        dx, dy = differences(rgb)
        dx, dy = F.pad(dx, (0, 1)), F.pad(dy, (0, 0, 0, 1))
        offsets = torch.arange(-r, r + 1, device=rgb.device)
        col = offsets.repeat(PATCH)  # a patch pixel's column (row) offset from the centre
        row = offsets.repeat_interleave(PATCH)
        gx = fold(dx.flatten(1)[:, at], w * (col < r).to(w)[:, None], dx)
        gy = fold(dy.flatten(1)[:, at], w * (row < r).to(w)[:, None], dy)
        return screened_poisson(colour, gx[..., :-1], gy[..., :-1, :], self.hole)

    def rebuild(self, rgb, index, rounds, sharpness, seed, blend=False):
        """`rounds` of match (PIXEL_ITERS PatchMatch iterations) then vote, from `index`, the last vote
        blended in the gradient domain if `blend`; returns (image, its pixel field)."""
        x = rgb
        for k in range(rounds):
            index, dist = self.match(x, index, PIXEL_ITERS, seed * 100 + k)
            x = self.vote(x, index, dist, sharpness, blend=blend and k == rounds - 1)
        return x, index

    def replay(self, rgb, index, sharpness, seed):
        """The vote of a given field (e.g. the coarser scale's, doubled) over this scale's image."""
        index, dist = self.match(rgb, index, 0, seed)
        return self.vote(rgb, index, dist, sharpness)
