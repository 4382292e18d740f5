"""The onion-peel fill against a loop-by-loop reference, and what it is for: continuing each side of the
hole with that side's colours instead of an average of the whole edge."""
import pytest
import torch

from npsynth_ext import onion
from npsynth_ext.onion import LOCALITY, PATCH, onion_fill, onion_start


def reference_onion(values, known, sources_ok):
    """The same rule written pixel by pixel: ring after ring, each ring pixel takes the centre of the source
    patch (wholly known and allowed) with the least mean squared difference over its patch's pixels that
    are known or filled (pixels past the frame do not count), plus LOCALITY x the squared distance from
    the ring pixel to the source's centre; the whole ring is decided before it is written."""
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
            best, arg = None, None
            for sy, sz in centres:
                total, count = 0.0, 0
                for dy in range(-r, r + 1):
                    for dz in range(-r, r + 1):
                        ty, tz = y + dy, z + dz
                        if 0 <= ty < H and 0 <= tz < W and filled[ty, tz]:
                            total += float(((x[:, ty, tz] - values[:, sy + dy, sz + dz].double()) ** 2).sum())
                            count += 1
                d = total / count + LOCALITY * ((y - sy) ** 2 + (z - sz) ** 2)
                if best is None or d < best:
                    best, arg = d, (sy, sz)
            chosen[(y, z)] = values[:, arg[0], arg[1]].double()
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


def test_each_side_continues_with_its_own_colour():
    """White above, red below, a 20-row hole across the boundary: the membrane would fill pink; the onion
    fill continues the boundary straight through the hole. Below the hole's top edge (above its bottom
    edge) a patch's known pixels are all white (red) and fit a white or a red centre equally well: the
    nearest source decides (without it, white grew into the red half from the middle of the hole)."""
    n = 40
    white, red = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.8, 0.1, 0.1])
    rgb = torch.where(torch.arange(n)[None, :, None] < n // 2, white[:, None, None], red[:, None, None])
    rgb = rgb.expand(3, n, n).contiguous()
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[10:30, 8:32] = True
    out = onion_start(torch.where(hole, torch.zeros_like(rgb), rgb), hole, torch.ones(n, n, dtype=torch.bool))
    torch.testing.assert_close(out[:, 10:20, 8:32], white[:, None, None].expand(3, 10, 24))
    torch.testing.assert_close(out[:, 20:30, 8:32], red[:, None, None].expand(3, 10, 24))


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
