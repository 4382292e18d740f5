"""The pixel step (npsynth_ext.pixels), the field geometry it relies on (fields.py) and the first guess
that runs it (pipeline.first_guess), against loop-by-loop references of the field arithmetic and vote."""
import math

import pytest
import torch

import npsynth_ext as nx
from npsynth_ext.fields import CELL, cells_to_pixels, hole_radius, upsample_field
from npsynth_ext.masks import dilate
from npsynth_ext.pixels import MAX_EXPONENT, PATCH, PatchFolder, PixelMatcher, roughness


def test_cells_to_pixels_keeps_each_pixels_place_in_its_cell():
    g = torch.Generator().manual_seed(0)
    n = 20  # 5 x 5 cells
    cells = torch.randint(-1, 25, (5, 5), generator=g)
    got = cells_to_pixels(cells, n)
    for y in range(n):
        for x in range(n):
            s = int(cells[y // CELL, x // CELL])
            want = -1 if s < 0 else ((s // 5) * CELL + y % CELL) * n + (s % 5) * CELL + x % CELL
            assert got[y, x] == want, (y, x)


def test_upsample_field_doubles_a_pixel_field():
    g = torch.Generator().manual_seed(1)
    m = 7
    field = torch.randint(-1, m * m, (m, m), generator=g)
    got = upsample_field(field, (2 * m, 2 * m))
    assert got.shape == (2 * m, 2 * m)
    for y in range(2 * m):
        for x in range(2 * m):
            s = int(field[y // 2, x // 2])
            want = -1 if s < 0 else ((s // m) * 2 + y % 2) * 2 * m + (s % m) * 2 + x % 2
            assert got[y, x] == want, (y, x)


def reference_weight(dist, centres, scale, ty, tx, py, px):
    """The weight of the patch centred at (ty, tx) at pixel (py, px): relative to the best distance among
    the patches covering that pixel."""
    r = PATCH // 2
    best = min(float(dist[y, x]) for y, x in centres if abs(y - py) <= r and abs(x - px) <= r)
    return math.exp(-min((float(dist[ty, tx]) - best) / scale, MAX_EXPONENT))


def reference_vote(rgb, hole, targets, index, dist, sharpness):
    """Every hole pixel from the patches covering it, one pixel and one patch at a time."""
    n = rgb.shape[-1]
    r = PATCH // 2
    out = rgb.clone()
    centres = [(int(t) // n, int(t) % n) for t in targets.flatten().nonzero().flatten()]
    ds = torch.tensor([float(dist[y, x]) for y, x in centres])
    scale = sharpness * float(ds.median())
    for py, px in hole.nonzero().tolist():
        acc, den = torch.zeros(rgb.shape[0], dtype=rgb.dtype), 0.0
        for ty, tx in centres:
            if abs(ty - py) > r or abs(tx - px) > r:
                continue
            m = int(index[ty, tx])
            w = reference_weight(dist, centres, scale, ty, tx, py, px)
            acc += w * rgb[:, m // n + py - ty, m % n + px - tx]
            den += w
        out[:, py, px] = acc / den
    return out


@pytest.mark.parametrize("box", [True, False])
@pytest.mark.parametrize("sharpness,far", [(0.5, 1.0), (3.0, 1.0), (0.5, 1e4)])
def test_vote_is_the_weighted_mean_of_the_covering_patches(sharpness, far, box):
    """far: the distances of the matches around one corner of the hole are scaled by it, so with 1e4 the
    pixels there are covered by poor matches only, and the best of them must still decide. box: the
    targets fill their bounding box (PatchFolder's dense columns), or an L-shaped hole's do not."""
    g = torch.Generator().manual_seed(2)
    n = 23
    rgb = torch.rand(3, n, n, generator=g, dtype=torch.float64)
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[9:14, 2:8] = True  # near the left border: some covering patches stick out of the frame
    if not box:
        hole[14:20, 12:15] = True
        hole[9:14, 8:15] = True
    matcher = PixelMatcher(hole, torch.ones(n, n, dtype=torch.bool))
    targets = matcher.targets.flatten().nonzero().flatten()
    assert PatchFolder(targets, n).dense == box
    sources = matcher.sources.flatten().nonzero().flatten()
    index = sources[torch.randint(0, len(sources), (n, n), generator=g)].view(n, n)
    index = torch.where(matcher.targets, index, -1)
    dist = torch.rand(n, n, generator=g, dtype=torch.float64)
    dist[:13, :6] *= far
    got = matcher.vote(rgb, index, dist, sharpness)
    want = reference_vote(rgb, hole, matcher.targets, index, dist, sharpness)
    torch.testing.assert_close(got, want)
    assert torch.equal(got[:, ~hole], rgb[:, ~hole])


def reference_gradient_votes(rgb, targets, index, dist, sharpness):
    """Per edge to the right (below) neighbour: the weighted mean, over the matched patches that cover both
    of its pixels, of the same difference at their source; the image's own difference where none does."""
    n = rgb.shape[-1]
    r = PATCH // 2
    centres = [(int(t) // n, int(t) % n) for t in targets.flatten().nonzero().flatten()]
    scale = sharpness * float(torch.tensor([float(dist[y, x]) for y, x in centres]).median())
    votes = []
    for dy, dx in ((0, 1), (1, 0)):
        acc = torch.zeros(3, n - dy, n - dx, dtype=rgb.dtype)
        den = torch.zeros(n - dy, n - dx, dtype=rgb.dtype)
        for ty, tx in centres:
            m = int(index[ty, tx])
            sy, sx = m // n - ty, m % n - tx  # source offset of this patch
            for py in range(max(ty - r, 0), min(ty + r - dy, n - 1 - dy) + 1):
                for px in range(max(tx - r, 0), min(tx + r - dx, n - 1 - dx) + 1):
                    w = reference_weight(dist, centres, scale, ty, tx, py, px)
                    diff = rgb[:, sy + py + dy, sx + px + dx] - rgb[:, sy + py, sx + px]
                    acc[:, py, px] += w * diff
                    den[py, px] += w
        own = rgb[:, dy:, dx:] - rgb[:, : n - dy, : n - dx]
        votes.append(torch.where(den > 0, acc / den.clamp_min(1e-300), own))
    return votes


def test_blended_vote_is_the_poisson_blend_of_the_colour_and_gradient_votes():
    from npsynth_ext.blend import screened_poisson

    g = torch.Generator().manual_seed(3)
    n = 21
    rgb = torch.rand(3, n, n, generator=g, dtype=torch.float64)
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[8:13, 1:7] = True
    matcher = PixelMatcher(hole, torch.ones(n, n, dtype=torch.bool))
    sources = matcher.sources.flatten().nonzero().flatten()
    index = torch.where(matcher.targets, sources[torch.randint(0, len(sources), (n, n), generator=g)].view(n, n), -1)
    dist = torch.rand(n, n, generator=g, dtype=torch.float64)
    got = matcher.vote(rgb, index, dist, 0.5, blend=True)
    colour = reference_vote(rgb, hole, matcher.targets, index, dist, 0.5)
    gx, gy = reference_gradient_votes(rgb, matcher.targets, index, dist, 0.5)
    torch.testing.assert_close(got, screened_poisson(colour, gx, gy, hole))
    assert torch.equal(got[:, ~hole], rgb[:, ~hole])


def stripes(n, period=6):
    x = torch.arange(n, dtype=torch.float32)
    grey = 0.5 + 0.4 * torch.sin(2 * math.pi * x / period)
    return torch.stack([grey[None, :].expand(n, n), grey[:, None].expand(n, n) * 0.5, 0.3 + 0 * grey[None, :]
                        .expand(n, n)]).contiguous()


def test_rebuild_turns_a_noisy_guide_into_the_real_texture():
    """A guide with the right structure but wrong detail (the truth plus noise) comes back as the truth:
    every hole pixel is voted from exact copies of the periodic texture."""
    n = 64
    truth = stripes(n)
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[20:44, 18:46] = True
    noise = 0.08 * torch.randn(3, n, n, generator=torch.Generator().manual_seed(3))
    guide = torch.where(hole, truth + noise, truth)
    matcher = PixelMatcher(hole, torch.ones(n, n, dtype=torch.bool))
    out, field = matcher.rebuild(guide, None, rounds=2, sharpness=0.5, seed=0)
    assert torch.equal(out[:, ~hole], truth[:, ~hole])
    torch.testing.assert_close(out, truth, atol=2e-3, rtol=0)
    assert (field[matcher.targets] >= 0).all()


def test_padding_and_hole_are_never_sources():
    n = 30
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[10:15, 10:15] = True
    inside = torch.ones(n, n, dtype=torch.bool)
    inside[:, 25:] = False
    m = PixelMatcher(hole, inside)
    r = PATCH // 2
    ys, xs = m.sources.nonzero().unbind(1)
    for y, x in zip(ys.tolist(), xs.tolist()):
        assert r <= y < n - r and r <= x < 25 - r, (y, x)
        assert not hole[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].any()


@pytest.mark.parametrize("rows,cols,want", [(7, 14, 4), (1, 1, 1), (8, 30, 4), (20, 3, 2)])
def test_hole_radius_counts_erosions_to_the_middle(rows, cols, want):
    hole = torch.zeros(40, 40, dtype=torch.bool)
    hole[5:5 + rows, 2:2 + cols] = True
    assert hole_radius(hole) == want
    assert hole_radius(hole, cap=3) == min(want, 3)
    assert hole_radius(hole, cap=want) == want
    assert hole_radius(hole, cap=want + 5) == want


def test_the_prior_starts_thin_holes_at_a_finer_level():
    """A 128-px frame: a 64-px box starts the pyramid at 32 px, a 4-px-wide stroke at the frame itself."""
    from npsynth_ext.first_guess import patch_prior_sides

    box = torch.zeros(128, 128, dtype=torch.bool)
    box[32:96, 32:96] = True
    stroke = torch.zeros(128, 128, dtype=torch.bool)
    stroke[60:64, 10:120] = True
    assert patch_prior_sides(box) == [32, 64, 128]
    assert patch_prior_sides(stroke) == [128]


@pytest.mark.parametrize("h,w", [(13, 17), (9, 9)])
def test_roughness_averages_the_differences_between_known_pixels(h, w):
    g = torch.Generator().manual_seed(4)
    rgb = torch.rand(3, h, w, generator=g, dtype=torch.float64)
    known = torch.rand(h, w, generator=g) > 0.3
    known[:, :5] = False  # columns 0-1: no known pair reaches their window
    got = roughness(rgb, known)
    r = PATCH // 2
    want = torch.zeros(2, h, w, dtype=rgb.dtype)
    for k, (dy, dx) in enumerate(((0, 1), (1, 0))):
        for y in range(h):
            for x in range(w):
                diffs = [(rgb[:, qy + dy, qx + dx] - rgb[:, qy, qx]).abs().mean()
                         for qy in range(max(y - r, 0), min(y + r, h - 1) + 1)
                         for qx in range(max(x - r, 0), min(x + r, w - 1) + 1)
                         if qy + dy < h and qx + dx < w and known[qy, qx] and known[qy + dy, qx + dx]]
                want[k, y, x] = sum(diffs) / len(diffs) if diffs else 0.0
    assert (want == 0).any() and (want > 0).any()
    torch.testing.assert_close(got, want)


def random_field(matcher, n, g):
    sources = matcher.sources.flatten().nonzero().flatten()
    index = sources[torch.randint(0, len(sources), (n, n), generator=g)].view(n, n)
    return torch.where(matcher.targets, index, -1)


def test_roughness_estimate_is_voted_like_the_colours():
    """Before any vote the hole's roughness is the plain mean over the covering matches; a vote
    gives them the colour vote's weights."""
    g = torch.Generator().manual_seed(5)
    n = 22
    rgb = torch.rand(3, n, n, generator=g, dtype=torch.float64)
    rough = torch.rand(2, n, n, generator=g, dtype=torch.float64)
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[8:14, 9:15] = True
    matcher = PixelMatcher(hole, torch.ones(n, n, dtype=torch.bool), rough)
    index = random_field(matcher, n, g)
    flat = torch.ones(n, n, dtype=torch.float64)
    want = reference_vote(rough, hole, matcher.targets, index, flat, 1.0)
    torch.testing.assert_close(matcher.seed_roughness(index), want)
    dist = torch.rand(n, n, generator=g, dtype=torch.float64)
    matcher.vote(rgb, index, dist, 0.5)
    torch.testing.assert_close(matcher.rough_now, reference_vote(rough, hole, matcher.targets, index, dist, 0.5))


def test_roughness_keeps_texture_under_a_smooth_guide():
    """Half the photo is flat grey, half grey noise of the same mean. Matches that start in the noise are
    kept there by the roughness features although the guide is flat; by colour alone they move to the flat
    half, where the guide is matched exactly."""
    n = 64
    g = torch.Generator().manual_seed(6)
    grey = torch.full((3, n, n), 0.5)
    noisy = (0.5 + 0.2 * torch.randn(1, n, n, generator=g)).clamp(0, 1).expand(3, n, n)
    rgb = torch.where(torch.arange(n)[None, None, :] >= n // 2, noisy, grey).contiguous()
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[20:40, 40:58] = True
    guide = torch.where(hole, torch.full_like(rgb, 0.5), rgb)

    def in_the_noise(rough):
        """The share of hole pixels whose final match lies in the noisy half."""
        matcher = PixelMatcher(hole, torch.ones(n, n, dtype=torch.bool), rough)
        start = torch.where(matcher.targets, torch.full((n, n), 10 * n + 50), -1)  # all in the noise
        _, field = matcher.rebuild(guide, start, rounds=2, sharpness=0.05, seed=0)
        return float((field[hole] % n >= n // 2).float().mean())

    assert in_the_noise(None) < 0.1
    assert in_the_noise(3 * roughness(rgb, ~hole)) > 0.9


def test_roughness_seed_ignores_starts_that_are_no_source():
    """Starts of -1, past the frame or on a pixel that is no source are left out of the plain mean; hole
    pixels that no valid start covers take the sources' mean roughness."""
    g = torch.Generator().manual_seed(7)
    n = 24
    rough = torch.rand(2, n, n, generator=g, dtype=torch.float64)
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[8:16, 6:17] = True
    matcher = PixelMatcher(hole, torch.ones(n, n, dtype=torch.bool), rough)
    index = random_field(matcher, n, g)
    index[:, :12] = torch.where(matcher.targets[:, :12], -1, index[:, :12])  # the left half: no starts
    index[15, 14] = n * n + 5  # past the frame
    index[10, 16] = 12 * n + 12  # a hole pixel: no source
    valid = matcher.targets & (index >= 0) & (index < n * n)
    valid &= matcher.sources.flatten()[index.clamp(0, n * n - 1)]
    assert not valid[15, 14] and not valid[10, 16] and valid.any()
    want = reference_vote(rough, hole, valid, index, torch.ones(n, n, dtype=torch.float64), 1.0)
    covered = dilate(valid, PATCH // 2)
    mean = rough[:, matcher.sources].mean(1)
    want = torch.where(hole & ~covered, mean[:, None, None], want)
    assert (hole & ~covered).any()
    torch.testing.assert_close(matcher.seed_roughness(index), want)


def test_frame_roughness_continues_into_the_padding():
    """Outside the photo the frame is padded by reflection; its roughness there is the membrane fill of the
    photo's, not the 0 of a window without known pairs."""
    from npsynth_ext.pixels import frame_roughness

    g = torch.Generator().manual_seed(8)
    n = 32
    rgb = torch.rand(3, n, n, generator=g, dtype=torch.float64)
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[10:20, 22:30] = True
    inside = torch.ones(n, n, dtype=torch.bool)
    inside[:, 24:] = False
    got = frame_roughness(rgb, hole, inside, 2.0)
    known = ~hole & inside
    torch.testing.assert_close(got[:, known], 2 * roughness(rgb, known)[:, known])
    assert (got[:, :, 28:] > 0.5 * got[:, known].mean()).all()  # far into the padding, as rough as the photo


def test_the_prior_joins_the_photo_without_a_step():
    """A brightness ramp with a hole across its whole height: no source patch has the hole's middle
    colours, so copies from either side meet in a step (nearly the whole brightness range across the hole)
    unless the last level is blended in the gradient domain, which follows the copies' own slope."""
    from npsynth_ext.pipeline import first_guess

    n = 64
    ramp = (torch.arange(n, dtype=torch.float32) / n)[None, None, :].expand(3, n, n).contiguous()
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[:, 24:40] = True
    out = first_guess(torch.where(hole, torch.zeros_like(ramp), ramp), hole, torch.ones(n, n, dtype=torch.bool),
                      nx.FillOptions())
    assert torch.equal(out[:, ~hole], ramp[:, ~hole])
    steps = (out[:, :, 1:] - out[:, :, :-1]).abs()
    assert steps.max() < 3 / n, steps.max()


def test_the_prior_blends_its_last_level_only_and_starts_from_the_onion(monkeypatch):
    from npsynth_ext import pipeline, pixels

    blends, starts = [], []
    rebuild = pixels.PixelMatcher.rebuild

    def recording(self, rgb, index, rounds, sharpness, seed, blend=False):
        blends.append((self.hole.shape[-1], rounds, blend, seed))
        return rebuild(self, rgb, index, rounds, sharpness, seed, blend)

    def onion_start(known, hole, inside):
        starts.append(known.shape[-1])
        return known

    monkeypatch.setattr(pixels.PixelMatcher, "rebuild", recording)
    monkeypatch.setattr(pipeline, "onion_start", onion_start)
    box = torch.zeros(128, 128, dtype=torch.bool)
    box[32:96, 32:96] = True
    image = pipeline.first_guess(torch.rand(3, 128, 128), box, torch.ones(128, 128, dtype=torch.bool),
                                 nx.FillOptions(seed=3))
    # four rounds a side, seeds from the fill's seed: 3 * 100 + the side's place
    assert blends == [(32, 4, False, 300), (64, 4, False, 301), (128, 4, True, 302)]
    assert starts == [32] and image.shape == (3, 128, 128)


def test_the_seed_reaches_the_first_guess():
    """The same seed gives the same first guess; another seed, other copies."""
    from npsynth_ext.pipeline import first_guess

    g = torch.Generator().manual_seed(2)
    rgb = torch.rand(3, 64, 64, generator=g)
    hole = torch.zeros(64, 64, dtype=torch.bool)
    hole[16:48, 16:48] = True
    inside = torch.ones(64, 64, dtype=torch.bool)
    a = first_guess(rgb, hole, inside, nx.FillOptions(seed=1))
    b = first_guess(rgb, hole, inside, nx.FillOptions(seed=1))
    c = first_guess(rgb, hole, inside, nx.FillOptions(seed=2))
    assert torch.equal(a, b) and not torch.equal(a, c)
