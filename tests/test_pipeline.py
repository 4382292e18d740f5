"""The three-scale fill end to end, on small crops of scikit-image photos (fast settings)."""
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import npsynth_ext as nx
from npsynth_ext import masks as M
from npsynth_ext.vgg import load_texture_net

FAST = dict(iters=(6, 3, 2), progress=False)


@pytest.fixture(scope="module")
def net():
    return load_texture_net()


@pytest.fixture(scope="module")
def photo():
    """A 120x150 crop of the coffee photo with a 40x50 hole off-centre."""
    img = np.ascontiguousarray(data.coffee()[100:220, 200:350])
    mask = np.zeros(img.shape[:2], bool)
    mask[30:70, 60:110] = True
    return img, mask


def test_fill_changes_only_the_hole(photo, net):
    img, mask = photo
    damaged = img.copy()
    damaged[mask] = 0
    out = nx.fill(damaged, mask, net=net, **FAST)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[~mask] == damaged[~mask]).all(), "pixels outside the hole changed"
    assert (out[mask] != 0).any(axis=-1).mean() > 0.99, "the hole was not filled"
    # a sane fill: the hole's colours are close to the photo's, not garbage
    assert np.abs(out[mask].astype(float).mean(0) - img[mask].astype(float).mean(0)).max() < 40


@pytest.mark.parametrize("rows,cols", [(slice(0, 40), slice(100, 160)), (slice(70, 100), slice(20, 80))])
def test_the_fill_never_sees_what_is_under_the_hole(net, rows, cols):
    """A photo lower than its hole's frame (the frame is padded by reflection) with the hole on an edge:
    the result is the same whatever the pixels under the hole hold (they are the object to remove), so
    their mirror image in the padding is not read either."""
    img = np.ascontiguousarray(data.coffee()[200:300, 300:556])
    mask = np.zeros(img.shape[:2], bool)
    mask[rows, cols] = True
    assert any(f.y0 < 0 or f.y0 + f.side > img.shape[0] for f in M.plan_frames(mask, None))
    black, red = img.copy(), img.copy()
    black[mask], red[mask] = 0, (255, 0, 0)
    assert (nx.fill(black, mask, net=net, **FAST) == nx.fill(red, mask, net=net, **FAST)).all()


def test_fill_is_deterministic_on_cpu(photo, net):
    img, mask = photo
    a = nx.fill(img, mask, net=net, seed=3, **FAST)
    b = nx.fill(img, mask, net=net, seed=3, **FAST)
    assert (a == b).all()


def test_texture_optimisation_beats_the_prior_alone(net):
    """On a textured photo the optimisation alone (no pixel step) brings the membrane prior much closer to
    the photo's own patches (texture energy: mean cosine distance of each hole patch to its nearest patch
    outside, on relu3_1 and relu4_1), and makes it much sharper."""
    img = np.stack([data.brick()[:128, :128]] * 3, -1)
    mask = np.zeros((128, 128), bool)
    mask[40:88, 40:88] = True
    neural = dict(content="classical", pixel_rounds=0, progress=False)
    prior = nx.fill(img, mask, net=net, iters=(0, 0, 0), **neural)
    ours = nx.fill(img, mask, net=net, iters=(10, 10, 30), **neural)  # one level: the last

    def grow(m):
        return torch.nn.functional.max_pool2d(m[None, None].float(), 3, 1, 1)[0, 0] > 0

    def texture_energy(out):
        x = torch.from_numpy(out).permute(2, 0, 1).float()[None] / 255
        with torch.no_grad():
            feats = net(x)
        total = 0
        for f in (feats["relu3_1"][0], feats["relu4_1"][0]):
            targets = grow(M.downscale_mask(torch.from_numpy(mask), f.shape[-1]))
            _, dist = nx.patch_nn(f, f, targets, ~grow(targets), 3, "cosine")
            total += dist[targets].mean() / 2
        return total

    def sharpness(out):
        g = out.astype(float).mean(-1)
        return np.hypot(np.diff(g, axis=0)[:, :-1], np.diff(g, axis=1)[:-1])[mask[:-1, :-1]].mean()

    assert texture_energy(ours) < 0.75 * texture_energy(prior)
    assert sharpness(ours) > 2 * sharpness(prior)


def test_api_keeps_the_callers_image_kind(photo, net):
    img, mask = photo
    pil = nx.fill(Image.fromarray(img), Image.fromarray(mask.astype(np.uint8) * 255), net=net,
                  iters=(1, 0, 0), progress=False)
    assert isinstance(pil, Image.Image) and pil.size == (img.shape[1], img.shape[0]) and pil.mode == "RGB"
    t = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    out = nx.fill(t, torch.from_numpy(mask), net=net, iters=(1, 0, 0), progress=False)
    assert isinstance(out, torch.Tensor) and out.shape == t.shape and out.dtype == torch.float32
    assert torch.equal(out[:, ~torch.from_numpy(mask)], (t * 255).round()[:, ~torch.from_numpy(mask)] / 255)
    gray = nx.fill(img.mean(-1).astype(np.uint8), mask, net=net, iters=(1, 0, 0), progress=False)
    assert gray.shape == img.shape


def test_save_steps_writes_each_scale(photo, net, tmp_path):
    """A 128 frame has one scale (smaller ones are skipped): its start, the optimisation's result and the
    scale's result, differing only in the hole's pixels (the frame is at the photo's resolution); without
    iterations at that level, no optimisation picture."""
    img, mask = photo
    nx.fill(img, mask, net=net, save_steps=str(tmp_path / "a"), **FAST)
    names = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.png"))
    assert names == ["frame1/scale1_128.png", "frame1/scale1_128_optimised.png", "frame1/scale1_128_start.png"]
    pictures = [np.asarray(Image.open(tmp_path / "a" / name)).astype(int) for name in names]
    assert all(p.shape == (128, 128, 3) for p in pictures)
    for one, other in [(0, 1), (1, 2), (0, 2)]:
        changed = int((pictures[one] != pictures[other]).any(-1).sum())
        assert 0 < changed <= mask.sum()
    nx.fill(img, mask, net=net, save_steps=str(tmp_path / "b"), **{**FAST, "iters": (6, 3, 0)})
    assert sorted(p.name for p in (tmp_path / "b").rglob("*.png")) == ["scale1_128.png", "scale1_128_start.png"]


def test_separate_holes_are_filled_in_frames_of_their_own(net, monkeypatch, tmp_path):
    """Two small holes in opposite corners: two 128 frames, each holding only its own hole, filled one
    after the other; only the holes' pixels change, and each frame's steps go to a folder of its own."""
    from npsynth_ext import pipeline

    frames = []
    real = pipeline.fill_frame
    monkeypatch.setattr(pipeline, "fill_frame", lambda net, rgb, hole, *rest: frames.append(
        (rgb.shape[-1], int(hole.sum()))) or real(net, rgb, hole, *rest))
    img = np.asarray(Image.fromarray(data.coffee()).resize((640, 427), Image.BICUBIC)).copy()
    mask = np.zeros(img.shape[:2], bool)
    mask[20:70, 30:90] = True
    mask[360:410, 560:620] = True
    out = nx.fill(img, mask, net=net, save_steps=str(tmp_path), **FAST)
    assert frames == [(128, 60 * 50), (128, 60 * 50)]
    assert (out[~mask] == img[~mask]).all()
    assert (out[20:70, 30:90] != img[20:70, 30:90]).any() and (out[360:410, 560:620] != img[360:410, 560:620]).any()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png")) == [
        f"frame{n}/scale1_128{kind}.png" for n in (1, 2) for kind in ("", "_optimised", "_start")]


def centred_box(n, radius):
    """An n x n hole mask holding a centred square box whose 3x3 erosions empty it after `radius` steps."""
    hole = torch.zeros(n, n, dtype=torch.bool)
    if radius:
        lo = n // 2 - radius
        hole[lo:lo + 2 * radius, lo:lo + 2 * radius] = True
    else:
        hole[0, 0] = True  # one pixel: gone after the first erosion, so as thin as a hole gets
    return hole


@pytest.mark.parametrize("n,plan", [
    (512, [(128, 7), (256, 8), (512, 9)]), (256, [(128, 7), (256, 9)]),
    (128, [(128, 9)]), (384, [(192, 7), (384, 9)]), (768, [(192, 7), (384, 8), (768, 9)]),
    (1024, [(128, 7), (256, 8), (512, 9), (1024, 9)]),
    (2048, [(128, 7), (256, 8), (512, 9), (1024, 9), (2048, 9)])])
def test_plan_levels(n, plan):
    from npsynth_ext.pipeline import plan_levels

    levels = plan_levels(centred_box(n, n // 4), nx.FillOptions(iters=(7, 8, 9), seed=5, pixel_rounds=2))
    assert [(level.side, level.iters) for level in levels] == plan
    assert [level.seed for level in levels] == [5 * 8 + k for k in range(len(plan))]
    assert all(level.rounds == 2 and level.blend for level in levels)


@pytest.mark.parametrize("n,radius,sides", [
    (512, 12, [128, 256, 512]), (512, 11, [256, 512]), (512, 6, [256, 512]), (512, 5, [512]), (512, 1, [512]),
    (256, 6, [128, 256]), (256, 5, [256]), (2048, 47, [256, 512, 1024, 2048]), (2048, 48, [128, 256, 512, 1024, 2048]),
    (128, 1, [128])])
def test_plan_levels_leaves_out_the_levels_where_the_hole_is_too_thin(n, radius, sides):
    """A level of side s is kept where radius * s / n >= 3 (MIN_LEVEL_RADIUS); the finest always. Entries are
    taken as for a frame of as many levels: one level takes the finest's, two the coarsest's and finest's."""
    from npsynth_ext.fields import MIN_LEVEL_RADIUS, hole_radius
    from npsynth_ext.pipeline import plan_levels

    assert MIN_LEVEL_RADIUS == 3
    hole = centred_box(n, radius)
    assert hole_radius(hole) == radius
    levels = plan_levels(hole, nx.FillOptions(iters=(7, 8, 9)))
    assert [level.side for level in levels] == sides
    want = {1: [9], 2: [7, 9]}.get(len(sides), [7, 8] + [9] * (len(sides) - 2))
    assert [level.iters for level in levels] == want


@pytest.mark.parametrize("bad,match", [
    (dict(alpha=-1), "alpha and beta"),
    (dict(iters=(1, 2)), "three"),
    (dict(max_frame=1056), "max_frame"),  # a multiple of 32, but a 1024+ frame has four levels: 64
    (dict(metric="l1"), "metric"),
    (dict(max_frame=100), "max_frame"),
    (dict(search="approx"), "search"),
    (dict(metric=("cosine", "cosine", "l2")), "metric"),
    (dict(content="membrane"), "unknown content prior"),
    (dict(content=3), "content must be"),
    (dict(pixel_rounds=-1), "pixel_rounds"),
    (dict(pixel_blend="no"), "pixel_blend must be True or False"),
    (dict(pixel_rounds=1.5), "pixel_rounds"),
    (dict(pixel_roughness=-1), "pixel_roughness must be a finite number >= 0"),
    (dict(pixel_roughness=float("nan")), "pixel_roughness"),
    (dict(pixel_roughness="3"), "pixel_roughness"),
    (dict(pixel_roughness=float("inf")), "pixel_roughness must be a finite number"),
    (dict(vgg_precision="float16"), "vgg_precision must be one of"),
])
def test_bad_options(photo, net, bad, match):
    img, mask = photo
    with pytest.raises(ValueError, match=match):
        nx.fill(img, mask, net=net, progress=False, **bad)


def test_missing_weights_and_absent_gpu_fail_before_any_work():
    with pytest.raises(FileNotFoundError, match="VGG-19 weights file not found"):
        nx.FillOptions(vgg_weights="/nonexistent/vgg19.pth")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            nx.FillOptions(device="cuda")


def test_bad_image_and_mask(photo):
    img, mask = photo
    with pytest.raises(M.MaskError, match="empty"):
        nx.fill(img, np.zeros_like(mask))
    with pytest.raises(M.MaskError, match="but the image is"):
        nx.fill(img, mask[:-1])
    with pytest.raises(TypeError, match="image must be"):
        nx.fill("photo.png", mask)
    with pytest.raises(ValueError, match="NaN"):
        nx.fill(np.full(img.shape, np.nan), mask)


@pytest.mark.parametrize("box", [(100, 160, 90, 200), (0, 40, 210, 256), (200, 256, 0, 30)],
                         ids=["middle", "top_right_border", "bottom_left_corner"])
def test_the_texture_term_reads_the_whole_frames_features(net, box):
    """The texture term reads target patches (3x3 around every target centre) from features that VGG
    computes for their read box only (TextureTerm.read_box, vgg.TextureNet.crop_for), laid on the match
    grid: there they must equal the whole frame's features, and the crop must cut something off."""
    from npsynth_ext.optimise import TextureTerm, match_grid

    img = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.BICUBIC)).copy()
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    hole = torch.zeros(256, 256, dtype=torch.bool)
    y0, y1, x0, x1 = box
    hole[y0:y1, x0:x1] = True
    inside = torch.ones(256, 256, dtype=torch.bool)
    grid = match_grid(hole)
    with torch.no_grad():
        whole = net(x[None])
    terms = {name: TextureTerm(whole[name][0], hole, inside, grid, "l2", seed=0) for name in ("relu3_1", "relu4_1")}
    boxes = {name: t.read_box() for name, t in terms.items()}
    crop = net.crop_for(boxes, 256)
    wy0, wy1, wx0, wx1 = crop.window
    assert (wy1 - wy0) * (wx1 - wx0) < 256 * 256, "the crop should cut something off in these cases"
    with torch.no_grad():
        part = net(x[None], torch.float32, crop)
    for name, term in terms.items():
        read = torch.nn.functional.max_pool2d(term.target_mask[None, None].float(), 3, 1, 1)[0, 0] > 0
        cut = whole[name][0][(slice(None), *term.cells)]
        laid = term.on_grid(part[name][0], boxes[name])
        assert laid.shape == cut.shape
        # float32's rounding where oneDNN picks other kernels for the smaller maps (tests/test_vgg.py)
        torch.testing.assert_close(laid[:, read], cut[:, read], rtol=0, atol=1e-5 * cut.abs().max().item())


def test_mask_box_and_grow_box():
    from npsynth_ext.fields import grow_box, mask_box

    mask = torch.zeros(10, 12, dtype=torch.bool)
    mask[2:5, 7] = True  # an L: a column and a row
    mask[4, 3:8] = True
    assert mask_box(mask) == (2, 5, 3, 8)
    assert grow_box((2, 5, 3, 8), 1, (10, 12)) == (1, 6, 2, 9)
    assert grow_box((2, 5, 3, 8), 6, (10, 12)) == (0, 10, 0, 12)  # clipped on every side


def test_upsample_field_moves_each_match_to_the_child_cell():
    from npsynth_ext.fields import upsample_field

    field = torch.tensor([[5, -1], [0, 3]])  # a 2x2 target grid over a 2x3 source grid
    up = upsample_field(field, (4, 6))
    # source (1, 2) -> children (2..3, 4..5); source (0, 0) -> (0..1, 0..1); source (1, 0) -> (2..3, 0..1)
    expected = torch.tensor([[2 * 6 + 4, 2 * 6 + 5, -1, -1],
                             [3 * 6 + 4, 3 * 6 + 5, -1, -1],
                             [0, 1, 2 * 6 + 0, 2 * 6 + 1],
                             [6, 7, 3 * 6 + 0, 3 * 6 + 1]])
    assert torch.equal(up, expected)


def test_exact_search_fills_too(photo, net):
    img, mask = photo
    out = nx.fill(img, mask, net=net, search="exact", **FAST)
    assert (out[~mask] == img[~mask]).all() and (out[mask] != img[mask]).any()


def checker(n, period=8):
    """A colour pattern that repeats every `period` pixels in both directions: any hole in it has an
    exact answer made of the photo's own pixels."""
    y, x = np.mgrid[:n, :n]
    r = 128 + 100 * np.sin(2 * np.pi * x / period)
    g = 128 + 100 * np.cos(2 * np.pi * y / period)
    b = 60 + 40 * ((x // (period // 2) + y // (period // 2)) % 2)
    return np.stack([r, g, b], -1).round().astype(np.uint8)


def test_the_pixel_route_rebuilds_a_repeating_pattern_from_its_own_pixels(net):
    """The patch prior and the pixel step build the hole from copies of known patches: on an exactly
    repeating pattern that fill is the pattern itself, while the optimisation alone, from the membrane
    prior, leaves it soft."""
    img = checker(128)
    mask = np.zeros((128, 128), bool)
    mask[44:84, 40:88] = True
    damaged = img.copy()
    damaged[mask] = 0
    out = nx.fill(damaged, mask, net=net, content="patches", pixel_rounds=3, **FAST)
    err = np.abs(out.astype(int) - img.astype(int))[mask].max(-1)
    assert (err <= 3).mean() > 0.95, f"only {(err <= 3).mean():.1%} of the hole matches the pattern"
    neural = nx.fill(damaged, mask, net=net, content="classical", pixel_rounds=0, **FAST)
    assert (np.abs(neural.astype(int) - img.astype(int))[mask].max(-1) <= 3).mean() < 0.5


def large_photo():
    """A 1100x700 photo: the astronaut upscaled, so its detail is coarser than its pixels, as in a
    high-resolution photo."""
    return np.asarray(Image.fromarray(data.astronaut()).resize((1100, 1100), Image.BICUBIC))[200:900].copy()


def test_a_large_frame_is_worked_at_its_own_resolution(net, tmp_path, monkeypatch):
    """A 500x500 hole: a 1024 frame (twice the hole, rounded up to a multiple of 32), worked at four levels,
    the finest at the frame's own size, the last two with the finest's iteration count; above 512 px the
    first match is PatchMatch's, not an exact search; only the hole changes."""
    from npsynth_ext import optimise

    searches = []  # (search, the relu3_1 or relu4_1 grid's side), relu3_1 being 1/4 of the level's

    def recorded(name):
        real = getattr(optimise, name)
        return lambda *args, **kw: searches.append((name, args[1].shape[-1])) or real(*args, **kw)

    for name in ("patch_nn", "patchmatch"):
        monkeypatch.setattr(optimise, name, recorded(name))
    img = large_photo()
    mask = np.zeros(img.shape[:2], bool)
    mask[100:600, 300:800] = True
    out = nx.fill(img, mask, net=net, iters=(1, 0, 1), save_steps=str(tmp_path), progress=False)
    steps = {p.name: Image.open(p).size for p in (tmp_path / "frame1").iterdir()}
    levels = {"scale1_128": 128, "scale2_256": 256, "scale3_512": 512, "scale4_1024": 1024}
    kinds = {"scale1_128": ("", "_start", "_optimised"), "scale2_256": ("", "_start")}  # 256: no iterations
    assert steps == {name + kind + ".png": (side, side) for name, side in levels.items()
                     for kind in kinds.get(name, ("", "_start", "_optimised"))}
    assert sorted(set(searches)) == [("patch_nn", 16), ("patch_nn", 32), ("patch_nn", 64), ("patch_nn", 128),
                                     ("patchmatch", 128), ("patchmatch", 256)]
    assert (out[~mask] == img[~mask]).all() and (out[mask] != img[mask]).any()


def test_max_frame_caps_the_working_side(net, monkeypatch):
    from npsynth_ext import pipeline

    sides = []
    real = pipeline.fill_frame
    monkeypatch.setattr(pipeline, "fill_frame", lambda net, rgb, *rest: sides.append(rgb.shape[-1]) or
                        real(net, rgb, *rest))
    img = large_photo()
    mask = np.zeros(img.shape[:2], bool)
    mask[100:600, 300:800] = True
    out = nx.fill(img, mask, net=net, iters=(1, 0, 0), max_frame=256, progress=False)
    assert sides == [256] and (out[~mask] == img[~mask]).all()


@pytest.mark.parametrize("weight", [0, 2.5])
def test_pixel_roughness_reaches_the_pixel_step(net, monkeypatch, weight):
    """pixel_roughness=0 gives the levels' pixel step no roughness; otherwise each level gets the frame's
    roughness times the weight at its own side, and only the first level starts the hole's from the
    surroundings (finer ones from the coarser copies). The first guess's pyramid (32, 64 and 128 px here)
    keeps pixels.ROUGHNESS whatever the option says."""
    from npsynth_ext import pipeline, pixels

    made, smoothed = [], []

    class Recording(pixels.PixelMatcher):
        def __init__(self, hole, inside, roughness=None):
            super().__init__(hole, inside, roughness)
            made.append((hole.shape[-1], roughness))

        def smooth_roughness(self):
            smoothed.append(self.hole.shape[-1])
            super().smooth_roughness()

    monkeypatch.setattr(pipeline, "PixelMatcher", Recording)
    img = np.ascontiguousarray(data.coffee()[40:296, 100:356])
    mask = np.zeros(img.shape[:2], bool)
    mask[64:192, 64:192] = True  # a 256 frame: levels of 128 and 256
    nx.fill(img, mask, net=net, pixel_roughness=weight, **FAST)
    sides = [side for side, _ in made]
    assert sides == [32, 64, 128, 128, 256]
    assert smoothed == [128]
    assert all(r is not None for _, r in made[:3])
    made = made[3:]
    if weight == 0:
        assert all(r is None for _, r in made)
        return
    assert [tuple(r.shape) for _, r in made] == [(2, 128, 128), (2, 256, 256)]
    # the frame is the whole photo: at 256 the roughness is the weight times that of its known pixels
    rgb = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    known = ~torch.from_numpy(mask)
    torch.testing.assert_close(made[1][1][:, known], weight * pixels.roughness(rgb, known)[:, known])


@pytest.mark.parametrize("rows,levels", [(6, [256]), (24, [128, 256])])
def test_a_thin_hole_skips_the_coarse_level(net, monkeypatch, rows, levels):
    """A 256 frame: a stroke 6 px thick (3 px from edge to middle, 1.5 at 128) is worked at 256 only; one
    24 px thick at 128 and 256."""
    from npsynth_ext import pipeline

    sides = []
    solve = pipeline.optimise
    monkeypatch.setattr(pipeline, "optimise", lambda net, start, hole, inside, iters, *rest, **kw: (
        iters and sides.append(start.shape[-1])) or solve(net, start, hole, inside, iters, *rest, **kw))
    img = np.ascontiguousarray(data.coffee()[40:296, 100:356])
    mask = np.zeros(img.shape[:2], bool)
    mask[100:100 + rows, 20:236] = True
    out = nx.fill(img, mask, net=net, **FAST)
    assert sides == levels and (out[~mask] == img[~mask]).all()


def test_progress_goes_from_0_to_1_by_levels_and_can_cancel(photo, net):
    img, mask = photo
    seen = []
    nx.fill(img, mask, net=net, on_progress=lambda fraction, label: seen.append((fraction, label)), **FAST)
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0 and fractions[-1] == 1 and fractions == sorted(fractions) and len(seen) >= 2
    assert "scale 1/" in seen[1][1]

    class Cancelled(Exception):
        pass

    def cancel(fraction, label):
        if fraction > 0:
            raise Cancelled

    with pytest.raises(Cancelled):
        nx.fill(img, mask, net=net, on_progress=cancel, **FAST)


@pytest.mark.parametrize("precision,fast,dtype", [("auto", True, torch.bfloat16), ("auto", False, torch.float32),
                                                  ("float32", True, torch.float32),
                                                  ("bfloat16", False, torch.bfloat16)])
def test_vgg_precision_reaches_every_vgg_call_of_the_optimisation(photo, net, monkeypatch, precision, fast, dtype):
    """Sources and targets alike run in the dtype vgg_precision picks ("auto": bfloat16 where the CPU has it
    natively), and the fill stays a fill."""
    from npsynth_ext import vgg

    monkeypatch.setattr(vgg, "has_fast_bfloat16", lambda device: fast)
    seen = []
    forward = type(net).forward

    def spy(self, rgb, dtype=torch.float32, crop=None):
        seen.append(dtype)
        return forward(self, rgb, dtype, crop)

    monkeypatch.setattr(type(net), "forward", spy)
    img, mask = photo
    out = nx.fill(img, mask, net=net, vgg_precision=precision, **FAST)
    assert seen and set(seen) == {dtype}
    assert np.abs(out[mask].astype(float).mean(0) - img[mask].astype(float).mean(0)).max() < 40
