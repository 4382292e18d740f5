"""The gradient-domain blend (npsynth_ext.blend.screened_poisson) against a dense least-squares solve of
its energy, written term by term."""
import pytest
import torch

from npsynth_ext.blend import screened_poisson


def dense_solution(colour, gx, gy, hole, lam):
    """min lam * sum_hole (x - colour)^2 + sum over 4-neighbour edges touching the hole of
    (x_q - x_p - g_pq)^2, the known pixels fixed: one row of a least-squares system per term."""
    C, H, W = colour.shape
    unknown = {p: i for i, p in enumerate(map(tuple, hole.nonzero().tolist()))}
    out = colour.clone()
    for c in range(C):
        rows, rhs = [], []

        def term(coeffs, value):
            row = torch.zeros(len(unknown), dtype=colour.dtype)
            for p, a in coeffs:
                if p in unknown:
                    row[unknown[p]] += a
                else:
                    value -= a * float(colour[c, p[0], p[1]])
            rows.append(row)
            rhs.append(value)

        for p in unknown:
            s = lam ** 0.5
            term([(p, s)], s * float(colour[c, p[0], p[1]]))
        for y in range(H):
            for x in range(W):
                if x + 1 < W and ((y, x) in unknown or (y, x + 1) in unknown):
                    term([((y, x + 1), 1.0), ((y, x), -1.0)], float(gx[c, y, x]))
                if y + 1 < H and ((y, x) in unknown or (y + 1, x) in unknown):
                    term([((y + 1, x), 1.0), ((y, x), -1.0)], float(gy[c, y, x]))
        A, b = torch.stack(rows), torch.tensor(rhs, dtype=colour.dtype)
        sol = torch.linalg.lstsq(A, b[:, None]).solution[:, 0]
        for p, i in unknown.items():
            out[c, p[0], p[1]] = sol[i]
    return out


@pytest.mark.parametrize("lam", [1.0, 0.01])
def test_matches_the_dense_least_squares_solution(lam):
    g = torch.Generator().manual_seed(0)
    H, W = 13, 17
    colour = torch.rand(3, H, W, generator=g, dtype=torch.float64)
    gx = torch.randn(3, H, W - 1, generator=g, dtype=torch.float64) * 0.1
    gy = torch.randn(3, H - 1, W, generator=g, dtype=torch.float64) * 0.1
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[2:9, 0:5] = True  # touches the left border
    hole[6:12, 9:15] = True  # a second piece, L-shaped with the first's box
    hole[4, 12] = True  # and a lone pixel
    got = screened_poisson(colour, gx, gy, hole, lam=lam, iters=2000, tol=1e-12)
    want = dense_solution(colour, gx, gy, hole, lam)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)
    assert torch.equal(got[:, ~hole], colour[:, ~hole])


def test_consistent_colour_and_gradients_are_kept():
    g = torch.Generator().manual_seed(1)
    img = torch.rand(3, 10, 12, generator=g, dtype=torch.float64)
    hole = torch.zeros(10, 12, dtype=torch.bool)
    hole[3:8, 4:9] = True
    got = screened_poisson(img, img[..., 1:] - img[..., :-1], img[..., 1:, :] - img[..., :-1, :], hole,
                           iters=500, tol=1e-12)
    torch.testing.assert_close(got, img, rtol=1e-9, atol=1e-9)


def test_a_seam_in_the_colour_spreads_out_when_the_gradients_have_none():
    """A smooth ramp whose hole's right half was pasted 0.2 too bright: with the ramp's own gradients the
    blend's largest step between neighbours is a small fraction of the pasted 0.2."""
    H, W = 40, 60
    ramp = (torch.arange(W, dtype=torch.float64) / W).expand(3, H, W).contiguous()
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[5:35, 10:50] = True
    colour = ramp.clone()
    colour[:, 5:35, 30:50] += 0.2
    got = screened_poisson(colour, ramp[..., 1:] - ramp[..., :-1], ramp[..., 1:, :] - ramp[..., :-1, :], hole)
    step = (got[..., 1:] - got[..., :-1] - (ramp[..., 1:] - ramp[..., :-1])).abs().max()
    assert step < 0.2 / 4
    assert (colour[..., 1:] - colour[..., :-1] - (ramp[..., 1:] - ramp[..., :-1])).abs().max() > 0.19
