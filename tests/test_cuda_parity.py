"""The CUDA kernels (on a GPU, or under the CUDA emulator) agree with the CPU kernels on the same inputs:
the same matches up to ties, the same distances, texture loss and gradient to rounding."""
import pytest
import torch

from npsynth_ext import ops
from samples import box_mask, hole_case, sample_cases
from test_texture_loss import random_index

CASES = list(sample_cases())
g = torch.Generator().manual_seed(21)
# Several target tiles and source splits of the CUDA search, a hole on the border, a batch.
CASES += [hole_case("tiles_45x52_c24", g, 24, 45, 52, box_mask(45, 52, 0, 20, 14, 40))]
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-4)}


def batched(case, dtype):
    c = case.to("cpu", dtype)
    lift = (lambda t: t[None]) if c.target.dim() == 3 else (lambda t: t)
    return lift(c.target), lift(c.source), lift(c.target_mask), lift(c.source_valid), c.patch_size


def on_both(name, device, *args):
    """(CPU result, CUDA result moved to the CPU) of native op `name`."""
    cpu = getattr(torch.ops.npsynth, name)(*args)
    moved = [a.to(device) if isinstance(a, torch.Tensor) else a for a in args]
    cuda = ops.native(name)(*moved)
    to_cpu = lambda r: r.cpu() if isinstance(r, torch.Tensor) else tuple(x.cpu() for x in r)  # noqa: E731
    return cpu, to_cpu(cuda)


def assert_same_matches(cpu, cuda, dtype):
    """Equal distances to rounding; equal indices wherever the two distances are not a tie."""
    (i_cpu, d_cpu), (i_cuda, d_cuda) = cpu, cuda
    torch.testing.assert_close(d_cuda, d_cpu, **TOL[dtype])
    differ = i_cpu != i_cuda
    # Where the indices differ, each backend's match must score the same as the other's: a tie.
    assert torch.allclose(d_cpu[differ], d_cuda[differ], **TOL[dtype])
    assert differ.float().mean() <= (0 if dtype == torch.float64 else 0.01), "more than ties differ"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_patch_nn_parity(case, metric, dtype, cuda_device):
    t, s, m, v, k = batched(case, dtype)
    assert_same_matches(*on_both("patch_nn", cuda_device, t, s, m, v, k, metric), dtype)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_patchmatch_parity(case, metric, cuda_device):
    """float64, from no start and from a start: the walks take the same decisions, so the same fields."""
    t, s, m, v, k = batched(case, torch.float64)
    start = random_index(case.to("cpu")).reshape(m.shape)
    for init in (None, start):
        cpu, cuda = on_both("patchmatch", cuda_device, t, s, m, v, k, metric, init, 2, 0, 5)
        assert torch.equal(cpu[0], cuda[0])
        torch.testing.assert_close(cuda[1], cpu[1], **TOL[torch.float64])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_texture_loss_parity(case, dtype, cuda_device):
    t, s, m, _, k = batched(case, dtype)
    index = random_index(case.to("cpu")).reshape(m.shape)
    loss = on_both("texture_loss", cuda_device, t, s, index, m, k)
    torch.testing.assert_close(loss[1], loss[0], **TOL[dtype])
    grad = torch.tensor(0.75, dtype=dtype)
    grads = on_both("texture_loss_backward", cuda_device, grad, t, s, index, m, k)
    torch.testing.assert_close(grads[1], grads[0], **TOL[dtype])
