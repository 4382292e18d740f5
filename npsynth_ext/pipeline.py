"""The fill (Yang et al. 2017, with the project's pixel step), read top to bottom.

fill(image, mask)
  1. frames     masks.plan_frames: a square frame about twice its size around each region of the hole (or
                group of close regions), cropped from the photo and padded by reflection where it sticks
                out; each frame is filled on its own (fill_frame).
  2. levels     plan_levels: the frame's sides, coarse to fine (a 512 frame: 128, 256, 512), less the
                coarse ones where the hole would be thinner than fields.MIN_LEVEL_RADIUS px.
  3. first guess  first_guess: the hole at the coarsest level; by default a pyramid of pixel steps from an
                onion peel (first_guess.py), run by the same level loop as the levels.
  4. level loop run_levels, each level: its start (the coarser result upsampled, and the coarser level's
                copies, doubled, voted at this side), L-BFGS on the hole (optimise.py) where the level has
                iterations, then the pixel step (pixels.py), which rebuilds the hole from real pixels of
                the photo and blends its last vote in the gradient domain. Each level hands its pixel
                matches on to the next.
  5. paste      masks.paste_frame: only the hole's pixels are written back into the photo.
"""
import copy
import math
import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import masks
from .fields import MIN_LEVEL_RADIUS, at_side, cells_to_pixels, hole_radius, level_view, thick_enough, upsample_field
from .first_guess import PATCHES, PRIOR_ROUNDS, PRIOR_SHARPNESS, get_prior, patch_prior_sides
from .images import to_mask, to_rgb_u8, write_image_atomically
from .onion import onion_start
from .optimise import optimise
from .options import FillOptions
from .pixels import PIXEL_SHARPNESS, ROUGHNESS, PixelMatcher, frame_roughness
from .vgg import load_texture_net


def fill(image, mask, *, net=None, on_progress=None, **options):
    """Fill the hole of `image` (numpy HxWx3/HxW array, PIL image or tensor) given `mask` (same size,
    hole where at least half-bright, images.to_mask). Returns the image in the caller's kind; outside the
    hole, its bytes are unchanged. Options: see FillOptions. `net`: a loaded vgg.TextureNet to reuse
    across fills (default: loaded for this fill). `on_progress(fraction, label)`, if given, is called
    before the first level and after every level of every frame, fraction going from 0 to 1; an
    exception it raises stops the fill (that is how a caller cancels one)."""
    opts = FillOptions(**options)
    image_u8, back = to_rgb_u8(image)
    hole_full = masks.check_mask(to_mask(mask), image_u8.shape[:2])
    return back(fill_u8(image_u8, hole_full, opts, net=net, on_progress=on_progress))


def fill_u8(image_u8, hole_full, opts, timings=None, net=None, on_progress=None):
    """The fill on a checked (H, W, 3) uint8 image and bool mask: each of the hole's frames in turn, one
    VGG network for all. If `timings` is a dict, each level's side (and "first guess") is mapped to its
    seconds there, summed over the frames; net and on_progress: see fill."""
    net = net or load_texture_net(opts.vgg_weights, opts.device)
    frames = masks.plan_frames(hole_full, opts.max_frame)
    image = torch.from_numpy(image_u8.copy()).permute(2, 0, 1).float() / 255
    out = image_u8
    if on_progress:
        on_progress(0.0, "starting")
    bar = tqdm(frames, desc="frames", unit="frame", disable=not opts.progress or len(frames) < 2, leave=False)
    for number, frame in enumerate(bar, 1):
        rgb, hole, inside = (t.to(opts.device) for t in masks.crop_frame(image, hole_full, frame))

        def level_done(level, levels, side, number=number):
            if on_progress:
                where = f"frame {number}/{len(frames)}, " if len(frames) > 1 else ""
                on_progress((number - 1 + level / levels) / len(frames), f"{where}scale {level}/{levels} ({side}px)")

        with torch.random.fork_rng(devices=[]):  # seed our work without disturbing the caller's generator
            torch.manual_seed(opts.seed)
            result = fill_frame(net, rgb, hole, inside, frame_options(opts, number), timings, level_done)
        out = masks.paste_frame(out, hole_full, frame, result.cpu())
    return out


def frame_options(opts, number):
    """The options for frame `number` (from 1): the same, but its levels saved in save_steps/frame<number>
    so that frames do not overwrite each other's. A shallow copy: the checked options are shared."""
    if not opts.save_steps:
        return opts
    frame_opts = copy.copy(opts)
    frame_opts.save_steps = os.path.join(opts.save_steps, f"frame{number}")
    return frame_opts


def fill_frame(net, rgb, hole, inside, opts, timings=None, level_done=None):
    """One frame: rgb [3, n, n], hole/inside [n, n]. Returns the filled frame. level_done(level, levels,
    side), if given, is called after each level (level from 1)."""
    levels = plan_levels(hole, opts)
    started = time.perf_counter()
    with torch.no_grad():
        known, coarse_hole, coarse_inside = level_view(rgb, hole, inside, levels[0].side)
        guess = first_guess(known, coarse_hole, coarse_inside, opts)
    start = torch.where(coarse_hole, guess.clamp(0, 1), known)
    _add_time(timings, "first guess", started)
    return run_levels(net, rgb, hole, inside, levels, start, opts, opts.pixel_roughness, timings, level_done)


@dataclass(frozen=True)
class Level:
    """One level of the loop: its side, its L-BFGS iterations (0: none) and label, its pixel step (rounds,
    vote sharpness, whether the last vote is blended; 0 rounds: none) and the seed of its searches.
    rough_from_surroundings: where its copies start without a coarser level's (from the optimisation's
    matches, or afresh), the hole's roughness starts as the membrane fill of its surroundings'; else as
    the mean of the sources' (the first guess's smallest side, whose onion start says nothing of it)."""
    side: int
    iters: int
    rounds: int
    sharpness: float
    blend: bool
    seed: int
    label: str = ""
    rough_from_surroundings: bool = True


def plan_levels(hole, opts):
    """The frame's levels, coarse to fine: masks.level_sides (n, n/2, ... down to 128-255 px) less the
    coarser ones where the hole is thinner than MIN_LEVEL_RADIUS pixels (the finest is always kept).
    opts.iters is given as (coarsest, middle, finest), the paper's three scales: the coarsest level, where
    the texture first forms from the first guess, takes the first entry; the finest the last, and so do
    the levels between the middle and the finest that frames of 1024 px and more have (they refine detail
    that the levels below have placed); a two-level plan has no middle. A plan of one level (a small or
    thin hole's) is worked at the photo's own resolution from the first guess's real pixels, as a finest
    level is, and takes the finest's entry: its cost stays in proportion to its area."""
    n = hole.shape[-1]
    sides = masks.level_sides(n)
    if len(sides) > 1:
        # Erode only as far as the coarsest level needs to know (at most 48 erosions of a 2048 frame).
        radius = hole_radius(hole, cap=math.ceil(MIN_LEVEL_RADIUS * n / sides[0]))
        sides = [side for side in sides[:-1] if thick_enough(radius, side, n)] + sides[-1:]
    entries = {1: [2], 2: [0, 2]}.get(len(sides), [0, 1] + [2] * (len(sides) - 2))
    return [Level(side, opts.iters[e], opts.pixel_rounds, PIXEL_SHARPNESS, opts.pixel_blend, opts.seed * 8 + k,
                  label=f"scale {k + 1}/{len(sides)} ({side}px)")
            for k, (side, e) in enumerate(zip(sides, entries))]


def first_guess(known, hole, inside, opts):
    """The hole at the coarsest level. The patches prior is the level loop with no optimisation over its
    own pyramid of this level's frame (first_guess.py), started from the onion peel of its smallest side.
    Its copies are not handed on: the first level's pixel step starts from its own deep matches, or
    afresh (handing a small hole's single level the guess's copies kept the guess's misplaced ones,
    docs/history.md)."""
    if opts.content != PATCHES:
        return get_prior(opts.content)(known, hole, inside)
    sides = patch_prior_sides(hole)
    levels = [Level(side, 0, PRIOR_ROUNDS, PRIOR_SHARPNESS, blend=k == len(sides) - 1, seed=opts.seed * 100 + k,
                    rough_from_surroundings=False)
              for k, side in enumerate(sides)]
    smallest, smallest_hole, smallest_inside = level_view(known, hole, inside, sides[0])
    start = torch.where(smallest_hole, onion_start(smallest, smallest_hole, smallest_inside), smallest)
    return run_levels(None, known, hole, inside, levels, start, opts, ROUGHNESS)


def run_levels(net, rgb, hole, inside, levels, start, opts, roughness_scale, timings=None, level_done=None):
    """The level loop over a frame (rgb [3, n, n], hole, inside [n, n]), coarse to fine, from `start`, the
    first level's start at its side. Each level:

    1. its start: after the first, the coarser result upsampled (bicubic) into the hole and, where the
       coarser level handed on its copies, their field doubled and voted at this side (PixelMatcher.replay);
    2. L-BFGS on the hole (optimise.optimise), where the level has iterations;
    3. the pixel step (PixelMatcher.rebuild), where it has rounds: its copies start from the field voted
       in 1, or, where none was, from the optimisation's relu3_1 matches carried down to pixels (they say
       where the optimisation put what), or else afresh (random);

    and hands its result and its pixel field to the next. Returns the finest result. The roughness
    features are measured on rgb at roughness_scale (0: colours alone)."""
    rough, field = None, None
    if roughness_scale and any(level.rounds for level in levels):
        rough = frame_roughness(rgb, hole, inside, roughness_scale)
    result = None
    for k, level in enumerate(levels):
        started = time.perf_counter()
        side = level.side
        known, hole_k, inside_k = level_view(rgb, hole, inside, side)
        matcher = None
        if level.rounds:
            matcher = PixelMatcher(hole_k, inside_k, None if rough is None else at_side(rough, side))
        replayed = False
        if result is not None:
            up = F.interpolate(result[None], size=(side, side), mode="bicubic", align_corners=False)[0]
            start = torch.where(hole_k, up.clamp(0, 1), known)
            if field is not None and matcher is not None and matcher.usable:
                field = upsample_field(field, (side, side))
                start = matcher.replay(start, field, level.sharpness, level.seed)
                replayed = True
        stem = os.path.join(opts.save_steps, f"scale{k + 1}_{side}") if opts.save_steps and level.label else None
        if stem:
            save_png(start, stem + "_start.png")
        result, deep = optimise(net, start, hole_k, inside_k, level.iters, opts, level.label, coarse=result,
                                seed=level.seed)
        if matcher is not None and matcher.usable:
            if stem and level.iters:  # the optimisation's result, before the pixel step rebuilds it
                save_png(result, stem + "_optimised.png")
            if not replayed:
                if level.rough_from_surroundings:
                    matcher.smooth_roughness()
                field = None if deep is None else cells_to_pixels(deep, side)
            result, field = matcher.rebuild(result, field, level.rounds, level.sharpness, level.seed, level.blend)
        else:
            field = None
        if stem:
            save_png(result, stem + ".png")
        if level.label:
            _add_time(timings, side, started)
        if level_done:
            level_done(k + 1, len(levels), side)
    return result


def _add_time(timings, key, started):
    if timings is not None:
        timings[key] = timings.get(key, 0) + time.perf_counter() - started


def save_png(rgb, path):
    """Write a [3, H, W] 0..1 image as PNG, atomically, creating its folder."""
    arr = (rgb.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_image_atomically(arr, path)
