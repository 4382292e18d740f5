"""patch_nn against the unfold/matmul oracle in npsynth_ext.reference."""
import pytest
import torch

import npsynth_ext as nx
from npsynth_ext import reference
from samples import box_mask, hole_case, sample_cases

CASES = list(sample_cases())
# Several target tiles and source splits of the CUDA search, a hole on the border: each backend against the
# reference (the CPU and CUDA kernels share their math, so comparing them with each other would prove little).
CASES += [hole_case("tiles_45x52_c24", torch.Generator().manual_seed(21), 24, 45, 52, box_mask(45, 52, 0, 20, 14, 40))]
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-9), torch.float32: dict(rtol=1e-4, atol=1e-4)}


def check_valid_matches(case, metric, index, dist):
    """index/dist (from a kernel) must be valid matches: -1/0 off the mask, a valid source centre on it,
    each achieving its returned distance. Returns the oracle's (index, dist) of the exact search."""
    c = case.to("cpu", torch.float64)
    index, dist = index.cpu(), dist.cpu().double()
    ref_index, ref_dist = reference.patch_nn(c.target, c.source, c.target_mask, c.source_valid, c.patch_size, metric)
    tol = TOL[case.target.dtype]
    off = ~c.target_mask
    assert (index[off] == -1).all()
    assert (dist[off] == 0).all()
    assert index.shape == ref_index.shape and dist.shape == ref_dist.shape
    batched = c.target.dim() == 4
    for b in range(c.target.shape[0] if batched else 1):
        t, s = (c.target[b], c.source[b]) if batched else (c.target, c.source)
        m, v = (c.target_mask[b], c.source_valid[b]) if batched else (c.target_mask, c.source_valid)
        idx, d = (index[b], dist[b]) if batched else (index, dist)
        t_pos = m.flatten().nonzero().flatten()
        matched = idx.flatten()[t_pos]
        assert ((matched >= 0) & (matched < v.numel())).all(), "index out of range"
        assert v.flatten()[matched].all(), "matched a source centre outside source_valid"
        achieved = reference.patch_distance(t, s, t_pos, matched, c.patch_size, metric)
        torch.testing.assert_close(d.flatten()[t_pos], achieved, **tol)
    return ref_index, ref_dist


def check_against_reference(case, metric, index, dist):
    """Valid matches whose distance equals the oracle's minimum (ties may pick any index, so indices are
    not compared)."""
    _, ref_dist = check_valid_matches(case, metric, index, dist)
    torch.testing.assert_close(dist.cpu().double(), ref_dist, **TOL[case.target.dtype])


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_reference_float64(case, metric, device):
    c = case.to(device)
    index, dist = nx.patch_nn(*c.args(), metric=metric)
    assert index.device.type == device and index.dtype == torch.int64 and dist.dtype == torch.float64
    check_against_reference(c, metric, index, dist)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_reference_float32(case, metric, device):
    c = case.to(device, torch.float32)
    index, dist = nx.patch_nn(*c.args(), metric=metric)
    assert dist.dtype == torch.float32
    check_against_reference(c, metric, index, dist)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_large_map_spans_many_tiles(metric, device):
    """More targets and sources than one CPU tile (512 x 1024) or one CUDA block holds."""
    g = torch.Generator().manual_seed(3)
    c = hole_case("large", g, 16, 61, 67, box_mask(61, 67, 12, 47, 9, 50)).to(device, torch.float32)
    check_against_reference(c, metric, *nx.patch_nn(*c.args(), metric=metric))


def test_ties_pick_one_of_the_equal_patches(device):
    """A periodic source repeats every patch many times, so each target has many exact ties. Any of them
    is a right answer (the tiled dot products round differently per tile, so which one wins is not part
    of the contract), but it must be one of them, with distance ~0."""
    g = torch.Generator().manual_seed(1)
    tile = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    source = tile.repeat(1, 5, 5)  # [2, 15, 20], period (3, 4)
    valid = box_mask(15, 20, 1, 14, 1, 19)  # interior: patches never touch the zero padding
    mask = box_mask(15, 20, 4, 11, 5, 15)
    index, dist = nx.patch_nn(source.clone().to(device), source.to(device), mask.to(device), valid.to(device))
    index, dist = index.cpu(), dist.cpu()
    t_pos = mask.flatten().nonzero().flatten()
    q = index.flatten()[t_pos]
    assert valid.flatten()[q].all()
    assert torch.equal(q // 20 % 3, t_pos // 20 % 3) and torch.equal(q % 20 % 4, t_pos % 20 % 4)
    assert dist.abs().max().item() < 1e-12


def test_batched_equals_each_item_alone(device):
    c = next(c for c in CASES if c.name == "batched").to(device)
    for metric in ("l2", "cosine"):
        index, dist = nx.patch_nn(*c.args(), metric=metric)
        for b in range(c.target.shape[0]):
            i1, d1 = nx.patch_nn(c.target[b], c.source[b], c.target_mask[b], c.source_valid[b], c.patch_size, metric)
            assert torch.equal(index[b], i1) and torch.equal(dist[b], d1)


def test_deterministic(device):
    g = torch.Generator().manual_seed(5)
    c = hole_case("det", g, 32, 40, 44, box_mask(40, 44, 10, 30, 12, 30)).to(device, torch.float32)
    first = nx.patch_nn(*c.args())
    for _ in range(2):
        again = nx.patch_nn(*c.args())
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_zero_patches_under_cosine_match_nothing_in_particular(device):
    """A zero target patch has no direction: its cosine distance is 1 to everything (no NaN)."""
    target = torch.zeros(3, 5, 5, dtype=torch.float64)
    source = torch.randn(3, 5, 5, dtype=torch.float64)
    mask = box_mask(5, 5, 2, 3, 2, 3)
    index, dist = nx.patch_nn(target.to(device), source.to(device), mask.to(device),
                              torch.ones(5, 5, dtype=torch.bool, device=device), metric="cosine")
    assert dist[2, 2].item() == 1.0 and index[2, 2].item() == 0


def test_outputs_carry_no_gradient(device):
    """Matching is not differentiable: inputs that require grad give outputs that do not."""
    c = next(c for c in CASES if c.name == "random_7x11_c3").to(device)
    target = c.target.clone().requires_grad_()
    index, dist = nx.patch_nn(target, target, c.target_mask, c.target_mask | True)
    assert not index.requires_grad and not dist.requires_grad
