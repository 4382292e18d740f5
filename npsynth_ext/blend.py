"""Gradient-domain blend of a patch vote (screened Poisson, as in Darabi et al. 2012, "Image Melding").

A colour vote pastes copies from different places of the photo next to each other. Where two copies
meet, or where a copy meets the photo at the hole's edge, their brightness rarely agrees: a seam, most
visible in smooth areas such as a sky. The same patches also give a vote of gradients (each patch's
source differences between neighbouring pixels), and those have no seams: across the meeting line they
are the source's own small differences. The blend solves, over the hole's pixels x,

    min  lam * sum_hole (x - colour)^2  +  sum_edges (x_q - x_p - g_pq)^2

with the known pixels fixed (every 4-neighbour edge that touches the hole counts, so the hole's edge
continues the photo). The seams' steps spread over about 1/sqrt(lam) pixels, too smooth to see, while
the copies keep their texture; the colour term keeps large holes from drifting.
"""
import torch

from .fields import grow_box, mask_box

LAMBDA = 0.01  # colour weight against the gradients': the seams spread over ~10 px
CG_ITERS = 300
CG_TOL = 1e-5  # relative residual at which conjugate gradients stop
CHECK_EVERY = 16  # iterations between looks at the residual


def differences(x):
    """Differences to the right and downward neighbour ([..., H, W-1], [..., H-1, W])."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def _adjoint(dx, dy):
    """The transpose of differences, applied to edge values."""
    H, W = dy.shape[-2] + 1, dx.shape[-1] + 1
    out = dx.new_zeros(*dx.shape[:-1], W)
    out[..., :, 1:] += dx
    out[..., :, :-1] -= dx
    grow = dy.new_zeros(*dy.shape[:-2], H, dy.shape[-1])
    grow[..., 1:, :] += dy
    grow[..., :-1, :] -= dy
    return out + grow


def screened_poisson(colour, gx, gy, hole, lam=LAMBDA, iters=CG_ITERS, tol=CG_TOL):
    """colour [C, H, W] (the known pixels where hole is False), target gradients gx [C, H, W-1] and gy
    [C, H-1, W] (used on edges that touch the hole). Returns colour with its hole pixels replaced by the
    minimiser of the energy above (conjugate gradients on the hole pixels)."""
    if not hole.any():
        return colour
    # The hole's box grown by one pixel holds every edge that touches it.
    y0, y1, x0, x1 = grow_box(mask_box(hole), 1, hole.shape)
    h = hole[y0:y1, x0:x1]
    c = colour[:, y0:y1, x0:x1]
    hf = h.to(colour.dtype)
    ex = (h[:, 1:] | h[:, :-1]).to(colour.dtype)
    ey = (h[1:, :] | h[:-1, :]).to(colour.dtype)
    gx, gy = gx[:, y0:y1, x0:x1 - 1] * ex, gy[:, y0:y1 - 1, x0:x1] * ey

    def apply(v):  # (lam * H + D^T E D) v, on vectors that are zero off the hole
        dx, dy = differences(v)
        return (lam * v + _adjoint(dx * ex, dy * ey)) * hf

    known = c * (1 - hf)
    kx, ky = differences(known)
    b = (lam * c + _adjoint(gx - kx * ex, gy - ky * ey)) * hf
    x = c * hf  # start from the colour vote
    r = b - apply(x)
    p = r.clone()
    rr = (r * r).sum()
    stop = (tol * tol) * (b * b).sum()
    for i in range(iters):
        if i % CHECK_EVERY == 0 and rr <= stop:  # reading rr waits for the device: not every iteration
            break
        ap = apply(p)
        step = rr / (p * ap).sum().clamp_min(1e-30)
        x = x + step * p
        r = r - step * ap
        rr_next = (r * r).sum()
        p = r + torch.where(rr > 0, rr_next / rr, torch.zeros_like(rr)) * p  # converged exactly: p = r = 0
        rr = rr_next
    out = colour.clone()
    out[:, y0:y1, x0:x1] = torch.where(h, x, c)
    return out
