"""patchmatch: always valid matches, exact where the search has had enough time, warm starts, seeds, and
close to exact search on real VGG features of a photo."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import npsynth_ext as nx
from samples import box_mask, hole_case, outside, sample_cases
from test_patch_nn import TOL, check_valid_matches

CASES = list(sample_cases())


@pytest.mark.parametrize("iters", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_are_valid_and_achieve_their_distance(case, metric, dtype, iters, device):
    """From no start: iters=0 checks the stand-in search's start alone, iters=1 the walk after it."""
    c = case.to(device, dtype)
    index, dist = nx.patchmatch(*c.args(), metric=metric, iters=iters)
    assert index.device.type == device and index.dtype == torch.int64 and dist.dtype == dtype
    check_valid_matches(c, metric, index, dist)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_walk_only_improves_and_improves_where_it_can(case, metric, device):
    """From a random start (the same seed: the same start), one iteration never worsens a target's match,
    and where the start is not already exact somewhere, it improves the total: a walk that does nothing
    fails here. Random starts are far from exact on these noise features, so every case with more than a
    few targets has room to improve."""
    c = case.to(device)
    start = torch.full(c.target_mask.shape, -1, dtype=torch.int64, device=device)  # every target at random
    index0, before = nx.patchmatch(*c.args(), metric=metric, init_index=start, iters=0, seed=7)
    index1, after = nx.patchmatch(*c.args(), metric=metric, init_index=start, iters=1, seed=7)
    _, exact = check_valid_matches(c, metric, index1, after)
    before, after = before.cpu(), after.cpu()
    tol = TOL[torch.float64]
    assert (after <= before + tol["atol"] + tol["rtol"] * before.abs()).all()
    room = before - exact
    if (room > 1e-6).any():
        assert after.sum() < before.sum() - 1e-9, "the walk left every match where it started"


def _shifted_copy():
    """The target is the source moved by (5, -7): every target patch has an exact copy among the
    sources. -> target, source, mask, valid, the expected flat match of each masked target."""
    g = torch.Generator().manual_seed(1)
    C, H, W = 8, 32, 36
    source = torch.randn(C, H, W, generator=g, dtype=torch.float64)
    target = torch.roll(source, shifts=(5, -7), dims=(1, 2))
    mask = box_mask(H, W, 9, 28, 3, 22)  # their copies sit at rows 4..22, columns 10..28: interior
    valid = box_mask(H, W, 1, H - 1, 1, W - 1)
    t_pos = mask.flatten().nonzero().flatten()
    return target, source, mask, valid, (t_pos // W - 5) * W + (t_pos % W + 7)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_finds_a_shifted_copy(metric, device):
    """Once a few random draws hit the right offset, propagation carries it along every row and column:
    the default iterations find every exact copy."""
    target, source, mask, valid, expected = _shifted_copy()
    index, dist = nx.patchmatch(*(t.to(device) for t in (target, source, mask, valid)), metric=metric)
    assert torch.equal(index.cpu().flatten()[mask.flatten()], expected)
    assert dist.abs().max().item() < 1e-9


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_warm_start_from_exact_stays_exact(metric, device):
    g = torch.Generator().manual_seed(2)
    c = hole_case("warm", g, 24, 45, 41, box_mask(45, 41, 12, 30, 10, 28)).to(device, torch.float32)
    exact_index, exact_dist = nx.patch_nn(*c.args(), metric=metric)
    for iters in (0, 1, 3):
        index, dist = nx.patchmatch(*c.args(), metric=metric, init_index=exact_index, iters=iters)
        torch.testing.assert_close(dist, exact_dist, **TOL[torch.float32])
        if iters == 0:
            assert torch.equal(index, exact_index)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("hole", [(6, 17, 5, 21), (0, 9, 3, 14)], ids=["inside", "top_border"])
def test_start_is_the_exact_search_when_stand_ins_lose_nothing(hole, metric, device):
    """With C * k * k <= 144 a stand-in keeps all C channels, rotated onto the principal directions, and a
    rotation keeps distances and angles: with every valid source on the stride-2 grid the start is then
    the exact search, match for match (this checks the projection, the stand-ins of the masked rows'
    span and the mapping of grid matches back to source centres)."""
    g = torch.Generator().manual_seed(11)
    C, H, W = 8, 23, 26
    target = torch.randn(C, H, W, generator=g, dtype=torch.float64)
    source = torch.randn(C, H, W, generator=g, dtype=torch.float64)
    mask = box_mask(H, W, *hole)
    grid = torch.zeros(H, W, dtype=torch.bool)
    grid[::2, ::2] = True
    valid = outside(mask, 3) & grid
    args = [t.to(device) for t in (target, source, mask, valid)]
    exact_index, exact_dist = nx.patch_nn(*args, 3, metric)
    index, dist = nx.patchmatch(*args, 3, metric, iters=0)
    assert torch.equal(index, exact_index)
    torch.testing.assert_close(dist, exact_dist, **TOL[torch.float64])


def test_invalid_start_entries_are_replaced(device):
    """Entries of init_index that are -1, out of range or not a valid source start from a random valid
    source; valid ones are kept (iters=0 only evaluates the start)."""
    g = torch.Generator().manual_seed(4)
    c = hole_case("init", g, 6, 17, 19, box_mask(17, 19, 5, 12, 6, 13)).to(device)
    n = c.source_valid.numel()
    some_valid = int(c.source_valid.flatten().nonzero()[3])
    some_invalid = int((~c.source_valid).flatten().nonzero()[0])
    init = torch.full(c.target_mask.shape, some_valid, dtype=torch.int64, device=device)
    flat = init.view(-1)
    t_pos = c.target_mask.flatten().nonzero().flatten()
    flat[t_pos[0]], flat[t_pos[1]], flat[t_pos[2]], flat[t_pos[3]] = -1, n, n + 50, some_invalid
    index, dist = nx.patchmatch(*c.args(), init_index=init, iters=0)
    check_valid_matches(c, "l2", index, dist)
    kept = index.view(-1)[t_pos[4:]]
    assert (kept == some_valid).all()


def test_same_seed_same_field_other_seed_other_field(device):
    g = torch.Generator().manual_seed(6)
    c = hole_case("seeds", g, 16, 40, 44, box_mask(40, 44, 10, 30, 12, 32)).to(device, torch.float32)
    first = nx.patchmatch(*c.args(), iters=1, seed=3)
    again = nx.patchmatch(*c.args(), iters=1, seed=3)
    other = nx.patchmatch(*c.args(), iters=1, seed=4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_thread_count_does_not_change_the_field():
    g = torch.Generator().manual_seed(8)
    c = hole_case("threads", g, 16, 40, 44, box_mask(40, 44, 10, 30, 12, 32)).to("cpu", torch.float32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = nx.patchmatch(*c.args(), iters=2)
        torch.set_num_threads(max(2, before))
        many = nx.patchmatch(*c.args(), iters=2)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


def test_batched_equals_each_item_alone(device):
    c = next(c for c in CASES if c.name == "batched").to(device)
    index, dist = nx.patchmatch(*c.args(), iters=2)
    for b in range(c.target.shape[0]):
        i1, d1 = nx.patchmatch(c.target[b], c.source[b], c.target_mask[b], c.source_valid[b], c.patch_size, iters=2)
        assert torch.equal(index[b], i1) and torch.equal(dist[b], d1)


def test_radius_limits_the_random_search(device):
    """With no propagation to help (one-pixel targets) and radius 1, every match stays within one step of
    its start, wherever it started."""
    g = torch.Generator().manual_seed(9)
    C, H, W = 4, 21, 23
    target = torch.randn(C, H, W, generator=g, dtype=torch.float64)
    source = torch.randn(C, H, W, generator=g, dtype=torch.float64)
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[2::4, 2::4] = True  # isolated targets: no neighbour to propagate from
    valid = torch.ones(H, W, dtype=torch.bool)
    start = torch.full((H, W), 10 * W + 11, dtype=torch.int64)
    index, _ = nx.patchmatch(target.to(device), source.to(device), mask.to(device), valid.to(device),
                             init_index=start.to(device), iters=3, radius=1)
    q = index.cpu()[mask]
    assert ((q // W - 10).abs() <= 3).all() and ((q % W - 11).abs() <= 3).all()
    assert (q != 10 * W + 11).any()


@pytest.fixture(scope="module")
def photo_features():
    """VGG-19 relu3_1 / relu4_1 of a 256x256 skimage photo, a 128x128 centre hole."""
    from PIL import Image
    from skimage import data

    from npsynth_ext.vgg import load_texture_net

    img = np.asarray(Image.fromarray(data.coffee()).resize((256, 256), Image.BICUBIC)).copy()
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    with torch.no_grad():
        feats = load_texture_net()(x)
    out = {}
    for name in ("relu3_1", "relu4_1"):
        f = feats[name][0].contiguous()
        side = f.shape[-1]
        hole = box_mask(side, side, side // 4, 3 * side // 4, side // 4, 3 * side // 4)
        mask = F.max_pool2d(hole[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
        out[name] = (f, mask, outside(mask, 3))
    return out


@pytest.mark.parametrize("layer", ["relu3_1", "relu4_1"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_close_to_exact_on_photo_features(photo_features, layer, metric, device):
    """On every backend, from no start, default iterations: the mean distance stays within 2% of exact
    search for l2 and 3% for cosine (docs/benchmarks.md has the measured margins); warm-started from the
    exact field of slightly different features (as between the pipeline's L-BFGS steps), within 2% after
    one iteration. The exact searches are the pure-PyTorch reference's."""
    from npsynth_ext import reference

    f, mask, valid = photo_features[layer]
    exact_index, exact = reference.patch_nn(f.double(), f.double(), mask, valid, 3, metric)
    g = torch.Generator().manual_seed(0)
    moved = (f + 0.05 * f.std() * torch.randn(f.shape, generator=g)).relu()
    _, moved_exact = reference.patch_nn(moved.double(), f.double(), mask, valid, 3, metric)
    on = [t.to(device) for t in (f, moved, mask, valid)]
    _, cold = nx.patchmatch(on[0], on[0], on[2], on[3], 3, metric)
    assert cold.cpu()[mask].mean() <= (1.02 if metric == "l2" else 1.03) * exact[mask].mean()
    _, warm = nx.patchmatch(on[1], on[0], on[2], on[3], 3, metric, init_index=exact_index.to(device), iters=1)
    assert warm.cpu()[mask].mean() <= 1.02 * moved_exact[mask].mean()


def test_baseline_cpu_walk_finds_the_shifted_copy_too():
    """On an AVX2 CPU the line walk runs its AVX2 build; NPSYNTH_BASELINE_CPU=1 selects the baseline
    build, which must find the same exact matches (in a fresh process: the choice is made once)."""
    import os
    import subprocess
    import sys

    code = (
        "import torch, npsynth_ext as nx\n"
        "from samples import box_mask\n"
        "from test_patchmatch import _shifted_copy\n"
        "target, source, mask, valid, expected = _shifted_copy()\n"
        "index, dist = nx.patchmatch(target.float(), source.float(), mask, valid)\n"
        "assert torch.equal(index.flatten()[mask.flatten()], expected), 'wrong matches'\n"
        "assert dist.abs().max().item() < 1e-3\n"
    )
    env = dict(os.environ, NPSYNTH_BASELINE_CPU="1")
    run = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(__file__), env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
