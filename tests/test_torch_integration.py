"""opcheck (schema, fake kernels, autograd registration, AOT dispatch) and torch.compile(fullgraph=True)."""
import pytest
import torch

import npsynth_ext as nx
from npsynth_ext.ops import native
from samples import sample_cases
from test_texture_loss import random_index

CASES = [c for c in sample_cases() if c.name in ("random_7x11_c3", "hole_right_border", "patch5_hole", "batched")]


def native_args(case, device, requires_grad=False):
    """The native ops take batched tensors."""
    c = case.to(device)
    unbatched = c.target.dim() == 3
    lift = (lambda t: t.unsqueeze(0)) if unbatched else (lambda t: t)
    index = lift(random_index(c).to(device))
    target = lift(c.target).detach().requires_grad_(requires_grad)
    return target, lift(c.source), lift(c.target_mask), lift(c.source_valid), index, c.patch_size


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_opcheck_patch_nn(case, metric, device):
    t, s, m, v, _, k = native_args(case, device)
    torch.library.opcheck(native("patch_nn").default, (t, s, m, v, k, metric))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_opcheck_patchmatch(case, device):
    t, s, m, v, index, k = native_args(case, device)
    torch.library.opcheck(native("patchmatch").default, (t, s, m, v, k, "l2", None, 2, 0, 7))
    torch.library.opcheck(native("patchmatch").default, (t, s, m, v, k, "cosine", index, 1, 3, 0))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_opcheck_texture_loss(case, device):
    t, s, m, _, index, k = native_args(case, device, requires_grad=True)
    torch.library.opcheck(native("texture_loss").default, (t, s, index, m, k))
    grad = torch.tensor(1.5, dtype=t.dtype, device=device)
    torch.library.opcheck(native("texture_loss_backward").default, (grad, t.detach(), s, index, m, k))


def test_compile_fullgraph(device):
    """One compiled step of the pipeline's inner loop: match (exact, then refined), loss, gradient."""
    case = next(c for c in sample_cases() if c.name == "hole_33x29_c64").to(device, torch.float32)

    def step(x, mask, valid):
        index, dist = nx.patch_nn(x.detach(), x.detach(), mask, valid)
        index, dist = nx.patchmatch(x.detach(), x.detach(), mask, valid, init_index=index, iters=1)
        return nx.texture_loss(x, x.detach(), index, mask), dist.sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x_eager = case.target.clone().requires_grad_()
    x_comp = case.target.clone().requires_grad_()
    loss_e, dsum_e = step(x_eager, case.target_mask, case.source_valid)
    loss_c, dsum_c = compiled(x_comp, case.target_mask, case.source_valid)
    loss_e.backward()
    loss_c.backward()
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(dsum_c, dsum_e)
    torch.testing.assert_close(x_comp.grad, x_eager.grad)
