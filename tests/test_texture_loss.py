"""texture_loss (and its fused backward) against the unfold oracle's value and autograd gradient."""
import pytest
import torch

import npsynth_ext as nx
from npsynth_ext import reference
from samples import box_mask, hole_case, sample_cases

CASES = list(sample_cases())
# Several target tiles and source splits of the CUDA search, a hole on the border: each backend against the
# reference (the CPU and CUDA kernels share their math, so comparing them with each other would prove little).
CASES += [hole_case("tiles_45x52_c24", torch.Generator().manual_seed(21), 24, 45, 52, box_mask(45, 52, 0, 20, 14, 40))]


def random_index(case, seed=0):
    """A valid match for every masked target, drawn at random from source_valid (not just the NN, so the
    gather must follow the index rather than assume it points to a near copy)."""
    g = torch.Generator().manual_seed(seed)
    valid = case.source_valid.reshape(-1, *case.source_valid.shape[-2:]).cpu()
    index = []
    for v in valid:
        pos = v.flatten().nonzero().flatten()
        index.append(pos[torch.randint(len(pos), case.target_mask.shape[-2:], generator=g)])
    index = torch.stack(index).reshape(case.target_mask.shape)
    return torch.where(case.target_mask.cpu(), index, torch.full_like(index, -1))


def loss_and_grad(fn, case, index, dtype):
    target = case.target.to(dtype).detach().requires_grad_()
    loss = fn(target, case.source.to(dtype), index, case.target_mask, case.patch_size)
    loss.backward()
    return loss.detach(), target.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_reference(case, dtype, device):
    c = case.to(device)
    index = random_index(c).to(device)
    loss, grad = loss_and_grad(nx.texture_loss, c, index, dtype)
    c64 = case.to("cpu")
    ref_loss, ref_grad = loss_and_grad(reference.texture_loss, c64, index.cpu(), torch.float64)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    assert loss.dtype == dtype and grad.dtype == dtype and grad.shape == c.target.shape
    torch.testing.assert_close(loss.cpu().double(), ref_loss, **tol)
    torch.testing.assert_close(grad.cpu().double(), ref_grad, **tol)


def test_loss_of_exact_matches_is_mean_nn_distance(device):
    """With index from patch_nn, the loss is the mean of patch_nn's l2 distances over the mask."""
    g = torch.Generator().manual_seed(2)
    c = hole_case("nn", g, 8, 21, 23, box_mask(21, 23, 5, 15, 6, 17)).to(device)
    index, dist = nx.patch_nn(*c.args())
    loss = nx.texture_loss(c.target, c.source, index, c.target_mask, c.patch_size)
    torch.testing.assert_close(loss, dist[c.target_mask].mean())


@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("random_7x11_c3", "hole_corner", "patch5_hole",
                                                                  "batched")], ids=lambda c: c.name)
def test_gradcheck(case, device):
    c = case.to(device)
    index = random_index(c).to(device)
    target = c.target.detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: nx.texture_loss(t, c.source, index, c.target_mask, c.patch_size), (target,), eps=1e-6, atol=1e-6)


def test_no_gradient_to_source(device):
    c = next(c for c in CASES if c.name == "hole_33x29_c64").to(device)
    index = random_index(c).to(device)
    source = c.source.detach().requires_grad_()
    target = c.target.detach().requires_grad_()
    nx.texture_loss(target, source, index, c.target_mask, c.patch_size).backward()
    assert source.grad is None
    assert target.grad.abs().sum() > 0


def test_empty_mask_is_zero(device):
    c = next(c for c in CASES if c.name == "empty_target_mask").to(device)
    index = torch.full(c.target_mask.shape, -1, dtype=torch.int64, device=device)
    loss, grad = loss_and_grad(nx.texture_loss, c, index, torch.float64)
    assert loss.item() == 0 and not grad.any()


def test_backward_is_deterministic(device):
    g = torch.Generator().manual_seed(4)
    c = hole_case("det", g, 32, 40, 44, box_mask(40, 44, 10, 30, 12, 30)).to(device, torch.float32)
    index = random_index(c).to(device)
    first = loss_and_grad(nx.texture_loss, c, index, torch.float32)
    for _ in range(2):
        again = loss_and_grad(nx.texture_loss, c, index, torch.float32)
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
