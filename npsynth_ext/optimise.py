"""One level's optimisation (Yang et al. 2017): L-BFGS on the hole's pixels x only, of

    E(x) = content(x) + alpha * texture(x) + beta * tv(x)

  content: mean squared difference in the hole (0..1 pixel units) to the level's start at the first level;
           afterwards, of the hole averaged down 2x to the coarser level's result (low frequencies only).
  texture: for relu3_1 and relu4_1 of VGG-19, texture_loss (mean ||P_i - P_nn(i)||^2 over hole patches)
           divided by the mean squared norm of the source patches, so the term is a relative patch error
           whatever the layer's scale (raw caffe-unit features would dwarf the content term many times).
  tv:      mean squared difference of neighbouring pixels that touch the hole.

Source patches (fields.source_centres on the layer's grid) come from the features of the level's start and
are held constant; the matches are recomputed every REMATCH_EVERY L-BFGS iterations and held constant in
between, as in the paper. A level's first match is exact (patch_nn) up to EXACT_START_SIDE; the re-matches
run a few PatchMatch iterations from the previous matches. Each step runs VGG only on what the texture
term reads, each layer cut down to what the layers after it need (vgg.TextureNet.crop_for): every feature
it reads, and the gradient, are the same sums as over the whole frame.
"""
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .fields import grow_box, mask_box, source_centres
from .masks import dilate, downscale_mask
from .ops import patch_nn, patchmatch, texture_loss
from .vgg import compute_dtype

PATCH_SIZE = 3  # deep patches: 3x3 feature positions, as in the paper
TEXTURE_LAYERS = ("relu3_1", "relu4_1")  # the paper's layers
REMATCH_EVERY = 10  # L-BFGS iterations between nearest-neighbour searches
REMATCH_ITERS = 2  # PatchMatch iterations per re-match: the features move little between re-matches


# The grid the targets and their matches are laid on (match_grid): the hole's bounding box grown by
# GRID_MARGIN pixels, on the relu4_1 cell grid. It must hold every cell a target patch reads, the hole's
# cells grown by two (16 px at relu4_1). PatchMatch draws its random candidates by a target's place on this
# grid, so another margin gives other matches and other fills: 72 px is the margin the fills were judged
# with.
GRID_MARGIN = 72
GRID_STRIDE = 8


def match_grid(hole):
    """(y0, y1, x0, x1): the part of the frame whose cells, on each texture layer's grid, carry the
    targets and their matches: the hole's bounding box grown by GRID_MARGIN, on the relu4_1 cell grid (so
    its cells are the frame's cells), clipped to the frame."""
    y0, y1, x0, x1 = mask_box(hole)

    def span(lo, hi, n):
        return (max(0, (lo - GRID_MARGIN) // GRID_STRIDE * GRID_STRIDE),
                min(n, -(-(hi + GRID_MARGIN) // GRID_STRIDE) * GRID_STRIDE))

    return (*span(y0, y1, hole.shape[0]), *span(x0, x1, hole.shape[1]))


# Exact search costs hole cells x source cells, the fourth power of the level's side: past this side a
# level's first match is PatchMatch from its stand-in start instead, many times cheaper there
# (docs/benchmarks.md).
EXACT_START_SIDE = 512


class TextureTerm:
    """One VGG layer's part of the texture energy at one scale: fixed source patches, the masks, the
    normaliser, and the current matches. The target mask and the match field are kept on the layer's cells
    of the match grid (match_grid); the matched indices are always flat positions of the whole source map."""

    def __init__(self, source, hole, inside, grid, metric, seed):
        hole_l = downscale_mask(hole, source.shape[-2:])
        inside_l = ~downscale_mask(~inside, source.shape[-2:])
        self.source = source
        full_mask = dilate(hole_l, PATCH_SIZE // 2) & inside_l
        self.source_valid = source_centres(hole_l, inside_l, PATCH_SIZE // 2, zero_padded=True)
        stride = hole.shape[-1] // source.shape[-1]
        self.cells = tuple(slice(a // stride, b // stride) for a, b in (grid[:2], grid[2:]))
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

    def read_box(self):
        """(y0, y1, x0, x1) on the layer's grid: the cells the target patches read, the targets' bounding
        box grown by the patch's reach (clipped to the map: past it the patches read zeros)."""
        y0, y1, x0, x1 = mask_box(self.target_mask)
        cy, cx = self.cells[0].start, self.cells[1].start
        return grow_box((cy + y0, cy + y1, cx + x0, cx + x1), PATCH_SIZE // 2, self.source.shape[-2:])

    def on_grid(self, features, box):
        """features [C, h, w] of `box` (read_box) laid on the match grid's cells, zeros elsewhere (no target
        patch reads there)."""
        (cy, cx), (gh, gw) = (self.cells[0].start, self.cells[1].start), self.target_mask.shape
        y0, y1, x0, x1 = box
        return F.pad(features, (x0 - cx, cx + gw - x1, y0 - cy, cy + gh - y1))

    def rematch(self, features, search):
        """Match the features on the match grid: exact search if `search` is 'exact', or if there are no matches
        yet on a level of at most EXACT_START_SIDE; else REMATCH_ITERS of PatchMatch, from the current
        matches or, on a larger level, from its own start (an exact search among small stand-ins of the
        patches), its random search from the whole map down (radius 0)."""
        args = (features, self.source, self.target_mask, self.source_valid, PATCH_SIZE, self.metric)
        if search == "exact" or self.index is None and self.side <= EXACT_START_SIDE:
            self.index, _ = patch_nn(*args)
        else:
            self.rematches += 1
            self.index, _ = patchmatch(*args, init_index=self.index, iters=REMATCH_ITERS, radius=0,
                                       seed=self.seed * 1000 + self.rematches)

    def full_field(self):
        """The match field on the whole layer grid (-1 outside the targets)."""
        field = torch.full(self.source.shape[-2:], -1, dtype=torch.int64, device=self.source.device)
        field[self.cells] = self.index
        return field

    def energy(self, features):
        return texture_loss(features, self.source, self.index, self.target_mask, PATCH_SIZE) / self.norm


def optimise(net, start, hole, inside, iters, opts, label, coarse=None, seed=0):
    """L-BFGS on the hole pixels of `start` ([3, n, n]) for `iters` iterations; returns the new image and
    the final relu3_1 match field on its whole grid (None where the level has no iterations or the layer
    no targets), from which the pixel step starts its copies. Each layer's PatchMatch is seeded from
    `seed` (the level's) and the layer's place in TEXTURE_LAYERS.

    The content term compares the hole with `start` (the content prior) or, given the previous scale's
    result `coarse` ([3, n/2, n/2]), compares the hole averaged down to that scale with it: the previous
    scale fixes the low frequencies, and the detail it could not hold is left to the texture term (an
    upsampled, hence blurred, reference would pull the new detail back out)."""
    if iters == 0 or opts.alpha == 0 and opts.beta == 0:
        return start, None
    flat_hole = hole.flatten().nonzero().flatten()
    base = start.detach().flatten(1)
    v = base[:, flat_hole].clone().requires_grad_()
    if coarse is None:
        reference = base[:, flat_hole].clone()

        def content(x, values):
            return ((values - reference) ** 2).mean()
    else:
        # Flat positions, found once: indexing by a bool mask in every evaluation would be a GPU sync each.
        coarse_hole = downscale_mask(hole, coarse.shape[-1]).flatten().nonzero().flatten()
        reference = coarse.detach().flatten(1)[:, coarse_hole]

        def content(x, values):
            return ((F.avg_pool2d(x[None], 2)[0].flatten(1)[:, coarse_hole] - reference) ** 2).mean()
    # Pairs of neighbouring pixels with at least one in the hole carry the smoothness term.
    pair_x = (hole[:, 1:] | hole[:, :-1]).float()
    pair_y = (hole[1:, :] | hole[:-1, :]).float()

    def compose(values):
        return base.index_copy(1, flat_hole, values).view_as(start)

    # Sources and targets go through VGG in the same dtype, so a target equal to a source matches it exactly.
    dtype = compute_dtype(opts.vgg_precision, start.device)
    with torch.no_grad():
        source_feats = net(start[None], dtype)
    grid = match_grid(hole)
    terms = {name: TextureTerm(source_feats[name][0], hole, inside, grid, opts.metric, seed=seed * 8 + i)
             for i, name in enumerate(TEXTURE_LAYERS)}
    terms = {name: t for name, t in terms.items() if t.usable}
    boxes = {name: t.read_box() for name, t in terms.items()}
    crop = net.crop_for(boxes, start.shape[-1]) if terms else None

    def read_features(x):
        """{layer: features [C, h, w] on its match grid} of the image x: what the texture term reads."""
        if not terms:
            return {}
        feats = net(x[None], dtype, crop)
        # squeeze, not [0]: its backward is a view, where select's zero-fills the whole map and copies
        return {name: t.on_grid(feats[name].squeeze(0), boxes[name]) for name, t in terms.items()}

    def energy():
        x = compose(v)
        e = content(x, v)
        if terms and opts.alpha:
            feats = read_features(x)
            e = e + opts.alpha * sum(t.energy(feats[name]) for name, t in terms.items()) / len(terms)
        if opts.beta:
            tv = ((x[:, :, 1:] - x[:, :, :-1]) ** 2 * pair_x).sum() + ((x[:, 1:, :] - x[:, :-1, :]) ** 2 * pair_y).sum()
            e = e + opts.beta * tv / (3 * flat_hole.numel())
        return e

    bar = tqdm(total=iters, desc=label, unit="it", disable=not opts.progress, leave=False)
    done = 0
    while done < iters:
        steps = min(REMATCH_EVERY, iters - done)
        with torch.no_grad():
            if done == 0:  # v == start: cut the match grid out of the whole start image's features
                feats = {name: source_feats[name][0][(slice(None), *t.cells)] for name, t in terms.items()}
            else:
                feats = read_features(compose(v))
            for name, t in terms.items():
                t.rematch(feats[name].contiguous(), opts.search)
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
    deep = terms.get("relu3_1")
    return compose(v.detach()), None if deep is None else deep.full_field()
