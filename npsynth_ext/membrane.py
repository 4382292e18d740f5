"""Membrane (harmonic) interpolation: values inside a region taken as the smooth interpolation of the
values around it, solved coarse to fine. The classical content prior fills the hole's colours with it; the
pixel step starts the hole's roughness with it."""
import torch
import torch.nn.functional as F

COARSEST = 4  # pyramid levels stop at this side
RELAX_ITERS = 40  # Jacobi sweeps per level; coarse-to-fine start makes a few dozen enough


def _neighbour_mean(x):
    """Mean of the 4 neighbours, edges replicated."""
    p = F.pad(x[None], (1, 1, 1, 1), mode="replicate")[0]
    return (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4


def membrane(values, known):
    """Harmonic interpolation of `values` where `known` is False, coarse to fine."""
    n = values.shape[-1]
    if n <= COARSEST or not (~known).any():
        mean = values[:, known].mean(1) if known.any() else values.new_full((values.shape[0],), 0.5)
        return torch.where(known, values, mean[:, None, None])
    if known.all():
        return values
    # Down: the mean of known pixels per 2x2 block (odd sides keep their last row/column).
    w = known.float()[None]
    num = F.avg_pool2d((values * w)[None], 2, ceil_mode=True)[0]
    den = F.avg_pool2d(w[None], 2, ceil_mode=True)[0]
    coarse_known = den[0] > 0
    coarse = membrane(num / den.clamp_min(1e-12), coarse_known)
    # Up, then relax with the known pixels held.
    x = F.interpolate(coarse[None], size=values.shape[-2:], mode="bilinear", align_corners=False)[0]
    x = torch.where(known, values, x)
    for _ in range(RELAX_ITERS):
        x = torch.where(known, values, _neighbour_mean(x))
    return x
