"""One contract for non-finite features on every backend (CPU, CUDA, the emulated CUDA kernels): every
masked target still gets a valid source; NaN distances rank after all others (+inf included) and ties go
to the smaller source index, so the best finite match wins when there is one; dist is the returned match's
own distance (NaN or inf where its patches hold non-finite values); texture_loss propagates NaN."""
import math

import pytest
import torch

import npsynth_ext as nx
from samples import box_mask, hole_case

H, W = 17, 19


def case():
    g = torch.Generator().manual_seed(13)
    return hole_case("non_finite", g, 6, H, W, box_mask(H, W, 5, 12, 6, 13))


def assert_valid(index, c):
    on = index[c.target_mask]
    assert ((on >= 0) & (on < H * W)).all() and c.source_valid.flatten()[on].all()
    assert (index[~c.target_mask] == -1).all()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nan_source_patches_are_never_chosen_over_finite_ones(metric, device):
    c = case().to(device)
    source = c.source.clone()
    source[:, 2, 3] = math.nan  # every source patch covering (2, 3) scores NaN
    covered = box_mask(H, W, 1, 4, 2, 5).to(device)
    index, dist = nx.patch_nn(c.target, source, c.target_mask, c.source_valid, 3, metric)
    finite_index, finite_dist = nx.patch_nn(c.target, source, c.target_mask, c.source_valid & ~covered, 3, metric)
    assert torch.equal(index, finite_index) and torch.equal(dist, finite_dist)
    # PatchMatch started on a NaN patch leaves it for the first finite candidate it tries.
    start = torch.full_like(index, 2 * W + 3)
    index, dist = nx.patchmatch(c.target, source, c.target_mask, c.source_valid, 3, metric, init_index=start,
                                iters=1, radius=0)
    assert_valid(index, c)
    assert dist[c.target_mask].isfinite().all()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_targets_with_no_finite_distance_get_the_first_valid_source(metric, device):
    c = case().to(device)
    target = c.target.clone()
    target[:, 8, 9] = math.nan  # the masked targets (7..9, 8..10) have only NaN distances
    nan_targets = box_mask(H, W, 7, 10, 8, 11).to(device)
    index, dist = nx.patch_nn(target, c.source, c.target_mask, c.source_valid, 3, metric)
    assert_valid(index, c)
    first_valid = int(c.source_valid.flatten().nonzero()[0])
    assert (index[nan_targets] == first_valid).all() and dist[nan_targets].isnan().all()
    assert dist[c.target_mask & ~nan_targets].isfinite().all()
    index, dist = nx.patchmatch(target, c.source, c.target_mask, c.source_valid, 3, metric, iters=1)
    assert_valid(index, c)
    assert dist[nan_targets].isnan().all() and dist[c.target_mask & ~nan_targets].isfinite().all()


def test_infinite_target_values_still_match(device):
    c = case().to(device)
    target = c.target.clone()
    target[:, 8, 9] = math.inf
    index, dist = nx.patch_nn(target, c.source, c.target_mask, c.source_valid)
    assert_valid(index, c)
    assert (dist[box_mask(H, W, 7, 10, 8, 11).to(device)] == math.inf).all()


def test_texture_loss_propagates_nan(device):
    c = case().to(device)
    target = c.target.clone()
    target[:, 8, 9] = math.nan
    target.requires_grad_()
    index, _ = nx.patch_nn(c.target, c.source, c.target_mask, c.source_valid)
    loss = nx.texture_loss(target, c.source, index, c.target_mask)
    loss.backward()
    assert loss.isnan() and target.grad[:, 8, 9].isnan().all()  # each element's gradient reads its own value
