"""The onion-peel fill against a loop-by-loop reference, and what it is for: continuing each side of the
hole with that side's colours instead of an average of the whole edge."""
import pytest
import torch

from npsynth_ext import onion
from npsynth_ext.onion import PATCH, TIE, onion_fill, onion_start


def reference_onion(values, known, sources_ok):
    """The same rule written pixel by pixel: ring after ring, each ring pixel takes the centre of the source
    patch (wholly known and allowed) with the least mean squared difference over its patch's pixels that
    are known or filled (pixels past the frame do not count); of the sources within TIE of the least, the
    one nearest the ring pixel (the first in row order if several are as near). The whole ring is decided
    before it is written."""
    C, H, W = values.shape
    r = PATCH // 2
    x = torch.where(known, values, torch.zeros_like(values)).double()
    filled = known.clone()
    centres = [(y, z) for y in range(r, H - r) for z in range(r, W - r)
               if bool((known & sources_ok)[y - r:y + r + 1, z - r:z + r + 1].all())]
    while not bool(filled.all()):
        ring = [(y, z) for y in range(H) for z in range(W) if not filled[y, z]
                and bool(filled[max(y - 1, 0):y + 2, max(z - 1, 0):z + 2].any())]
        chosen = {}
        for y, z in ring:
            fits = []
            for sy, sz in centres:
                total, count = 0.0, 0
                for dy in range(-r, r + 1):
                    for dz in range(-r, r + 1):
                        ty, tz = y + dy, z + dz
                        if 0 <= ty < H and 0 <= tz < W and filled[ty, tz]:
                            total += float(((x[:, ty, tz] - values[:, sy + dy, sz + dz].double()) ** 2).sum())
                            count += 1
                fits.append(total / count)
            least = min(fits)
            sy, sz = min((c for c, d in zip(centres, fits) if d <= least + TIE),
                         key=lambda c: (c[0] - y) ** 2 + (c[1] - z) ** 2)
            chosen[(y, z)] = values[:, sy, sz].double()
        for (y, z), v in chosen.items():
            x[:, y, z] = v
            filled[y, z] = True
    return x.to(values.dtype)


@pytest.mark.parametrize("shape,box", [((3, 19, 16), (6, 10, 4, 11)), ((1, 13, 13), (0, 4, 6, 13)),
                                       ((2, 14, 17), (6, 8, 7, 8))])
def test_onion_fill_matches_the_reference(shape, box):
    g = torch.Generator().manual_seed(sum(shape))
    values = torch.rand(*shape, generator=g, dtype=torch.float64)
    known = torch.ones(shape[1:], dtype=torch.bool)
    y0, y1, x0, x1 = box
    known[y0:y1, x0:x1] = False
    sources_ok = torch.ones_like(known)
    sources_ok[:, -2:] = False  # padding: patches that reach it are no sources
    got = onion_fill(values, known, sources_ok)
    torch.testing.assert_close(got, reference_onion(values, known, sources_ok))
    assert torch.equal(got[:, known], values[:, known])


@pytest.mark.parametrize("h,w,across", [(40, 40, False), (40, 52, False), (52, 40, True), (44, 36, True)])
def test_each_side_continues_with_its_own_colour(h, w, across):
    """White on one side, red on the other (a top/bottom or a left/right split, square and oblong frames),
    a 20-px wide hole across the boundary: the membrane would fill pink; the onion fill continues the
    boundary straight through the hole. Near the hole's white (red) edge a patch's known pixels are all
    white (red) and fit a white or a red centre equally well: the nearest source decides (without it,
    white grew into the red half from the middle of the hole)."""
    white, red = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.8, 0.1, 0.1])
    ys, xs = torch.arange(h)[:, None], torch.arange(w)[None, :]
    first = (xs < w // 2) if across else (ys < h // 2)
    rgb = torch.where(first, white[:, None, None], red[:, None, None]).expand(3, h, w).contiguous()
    hole = ((xs - w // 2).abs() <= 10) & ((ys - h // 2).abs() <= 12) if across else \
        ((ys - h // 2).abs() <= 10) & ((xs - w // 2).abs() <= 12)
    hole = hole & ~((xs - w // 2 == 10) if across else (ys - h // 2 == 10))  # 10 px on each side of the split
    out = onion_start(torch.where(hole, torch.zeros_like(rgb), rgb), hole, torch.ones(h, w, dtype=torch.bool))
    want = torch.where(first, white[:, None, None], red[:, None, None])
    torch.testing.assert_close(out, want.expand(3, h, w))


def test_large_levels_and_holes_without_sources_start_from_the_membrane(monkeypatch):
    calls = []
    monkeypatch.setattr(onion, "membrane", lambda values, known: calls.append(values.shape[-1]) or values)
    n = onion.ONION_MAX_SIDE + 2
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[20:30, 20:30] = True
    onion_start(torch.rand(3, n, n), hole, torch.ones(n, n, dtype=torch.bool))
    small = torch.zeros(12, 12, dtype=torch.bool)
    small[2:10, 2:10] = True  # no 7x7 patch is wholly known
    onion_start(torch.rand(3, 12, 12), small, torch.ones(12, 12, dtype=torch.bool))
    assert calls == [n, 12]
