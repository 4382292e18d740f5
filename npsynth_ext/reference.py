"""Pure-PyTorch oracles of every op, written from the op contracts and independently of the kernels: they
materialise the unfolded patch matrices (F.unfold) and the full distance matrix, which is exactly what the
native ops avoid. Tests compare against them; benchmarks/compare.py times them as the baseline.

Same signatures and outputs as npsynth_ext.ops, [C, H, W] or batched [B, C, H, W].
"""
import torch
import torch.nn.functional as F

COSINE_EPS = 1e-12  # a patch-norm product below this counts as zero (matches the kernels' contract)


def _unfold(fmap, patch_size):
    """[C, H, W] -> [H*W, C*k*k]: row p holds the zero-padded patch centred on flat position p."""
    return F.unfold(fmap.unsqueeze(0), patch_size, padding=patch_size // 2)[0].t()


def _batch(*tensors):
    return tensors if tensors[0].dim() == 4 else tuple(t.unsqueeze(0) for t in tensors)


def patch_nn(target, source, target_mask, source_valid, patch_size=3, metric="l2"):
    batched = target.dim() == 4
    target, source, target_mask, source_valid = _batch(target, source, target_mask, source_valid)
    index = torch.full(target_mask.shape, -1, dtype=torch.int64, device=target.device)
    dist = torch.zeros(target_mask.shape, dtype=target.dtype, device=target.device)
    for b in range(target.shape[0]):
        t_pos = target_mask[b].flatten().nonzero().flatten()
        s_pos = source_valid[b].flatten().nonzero().flatten()
        if len(t_pos) == 0:
            continue
        tp = _unfold(target[b], patch_size)[t_pos]
        sp = _unfold(source[b], patch_size)[s_pos]
        dot = tp @ sp.t()
        tn2 = (tp * tp).sum(1, keepdim=True)
        sn2 = (sp * sp).sum(1)
        if metric == "l2":
            d = (tn2 + sn2 - 2 * dot).clamp_min(0)
        elif metric == "cosine":
            d = 1 - dot / (tn2.sqrt() * sn2.sqrt()).clamp_min(COSINE_EPS)
        else:
            raise ValueError(f"unknown metric {metric!r}")
        best, arg = d.min(dim=1)
        index[b].view(-1)[t_pos] = s_pos[arg]
        dist[b].view(-1)[t_pos] = best
    return (index, dist) if batched else (index[0], dist[0])


def patch_distance(target, source, t_flat, s_flat, patch_size=3, metric="l2"):
    """Distance between the target patch centred on flat position t_flat and the source patch on s_flat,
    for 1-D tensors of positions ([C, H, W] maps): used to check that an index achieves its distance."""
    tp = _unfold(target, patch_size)[t_flat]
    sp = _unfold(source, patch_size)[s_flat]
    if metric == "l2":
        return ((tp - sp) ** 2).sum(1)
    dot = (tp * sp).sum(1)
    return 1 - dot / (tp.norm(dim=1) * sp.norm(dim=1)).clamp_min(COSINE_EPS)


def texture_loss(target, source, index, target_mask, patch_size=3):
    target, source, index, target_mask = _batch(target, source, index, target_mask)
    total = target.new_zeros(())
    count = 0
    for b in range(target.shape[0]):
        t_pos = target_mask[b].flatten().nonzero().flatten()
        tp = _unfold(target[b], patch_size)[t_pos]
        sp = _unfold(source[b].detach(), patch_size)[index[b].flatten()[t_pos]]
        total = total + ((tp - sp) ** 2).sum()
        count += len(t_pos)
    return total / max(count, 1)


def patchmatch(target, source, target_mask, source_valid, patch_size=3, metric="l2", init_index=None, iters=2,
               radius=8, seed=0):
    """What PatchMatch approximates: the exact search (its matches are never better than these)."""
    return patch_nn(target, source, target_mask, source_valid, patch_size, metric)
