"""Content priors: the smooth first guess of the hole at the coarsest scale, which the texture optimisation
then sharpens.

A prior is any callable prior(rgb [3, n, n] 0..1, hole [n, n] bool, inside [n, n] bool) -> [3, n, n] that
returns the image with the hole filled (pixels outside the hole are ignored by the caller). `classical`
needs no weights: a membrane (harmonic) fill solved coarse-to-fine, so the hole takes the smooth
interpolation of its whole boundary. A trained content network plugs in through the same interface.
"""
import torch
import torch.nn.functional as F

COARSEST = 4  # pyramid levels stop at this side
RELAX_ITERS = 40  # Jacobi sweeps per level; coarse-to-fine start makes a few dozen enough


def _neighbour_mean(x):
    """Mean of the 4 neighbours, edges replicated."""
    p = F.pad(x[None], (1, 1, 1, 1), mode="replicate")[0]
    return (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4


def _membrane(values, known):
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
    coarse = _membrane(num / den.clamp_min(1e-12), coarse_known)
    # Up, then relax with the known pixels held.
    x = F.interpolate(coarse[None], size=values.shape[-2:], mode="bilinear", align_corners=False)[0]
    x = torch.where(known, values, x)
    for _ in range(RELAX_ITERS):
        x = torch.where(known, values, _neighbour_mean(x))
    return x


def classical_prior(rgb, hole, inside):
    """Membrane fill of the hole from everything around it (padding included: it is reflected image)."""
    return _membrane(rgb, ~hole)


PRIORS = {"classical": classical_prior}


def get_prior(content):
    """A prior by name ('classical') or any callable with the prior signature."""
    if callable(content):
        return content
    if content not in PRIORS:
        raise ValueError(f"unknown content prior {content!r}; choose one of {sorted(PRIORS)} or pass a callable")
    return PRIORS[content]
