"""detail.match_sharpness: a soft hole gets the mean gradient of the photo around it by amplifying its
finest band, within the cap, never damping; nothing outside the hole changes. The checks measure with
numpy and scipy and blur with torchvision, not with the module's own helpers."""
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation
from torchvision.transforms.functional import gaussian_blur as tv_gaussian_blur

from npsynth_ext.detail import GAP, RING, SIGMA, match_sharpness

N = 97


def _noise(seed, lo=0.3, hi=0.7):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(3, N, N, generator=g, dtype=torch.float64)


def _box(y0, y1, x0, x1):
    m = torch.zeros(N, N, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _soften(rgb, hole, times=1, keep=0.4):
    """The hole's pixels mixed with a 3x3 box blur of the image applied `times` times (`keep` of the
    original stays): softer, same mean."""
    x = rgb
    for _ in range(times):
        x = torch.nn.functional.avg_pool2d(x[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    return torch.where(hole, keep * rgb + (1 - keep) * x, rgb)


def _mean_gradient(rgb, where):
    grey = rgb.numpy().mean(0)
    gy = np.diff(grey, axis=0)[:, :-1]
    gx = np.diff(grey, axis=1)[:-1, :]
    return np.hypot(gx, gy)[where.numpy()[:-1, :-1]].mean()


def _ring(hole, inside):
    h = hole.numpy()
    far = binary_dilation(h, np.ones((2 * (GAP + RING) + 1,) * 2, bool))
    near = binary_dilation(h, np.ones((2 * GAP + 1,) * 2, bool))
    return torch.from_numpy(far & ~near) & inside


def _amplified(rgb, hole, gain):
    k = 2 * int(3 * SIGMA + 0.5) + 1
    low = tv_gaussian_blur(rgb[None], [k, k], [SIGMA, SIGMA])[0]
    return torch.where(hole, (low + gain * (rgb - low)).clamp(0, 1), rgb)


def test_a_soft_hole_gets_the_sharpness_of_its_ring():
    rgb, hole = _noise(0), _box(33, 61, 30, 70)
    inside = torch.ones(N, N, dtype=torch.bool)
    soft = _soften(rgb, hole)
    out, gain = match_sharpness(soft, hole, inside, max_gain=8)
    assert 1 < gain < 8
    ring = _ring(hole, inside)
    assert _mean_gradient(soft, hole) < 0.7 * _mean_gradient(soft, ring)  # the case is a soft hole
    assert _mean_gradient(out, hole) == pytest.approx(_mean_gradient(out, ring), rel=1e-3)
    assert torch.equal(out[:, ~hole], soft[:, ~hole])
    torch.testing.assert_close(out, _amplified(soft, hole, gain))


def test_the_gain_is_capped():
    rgb, hole = _noise(1), _box(20, 70, 25, 60)
    inside = torch.ones(N, N, dtype=torch.bool)
    soft = _soften(rgb, hole, times=6, keep=0)
    out, gain = match_sharpness(soft, hole, inside, max_gain=1.5)
    assert gain == 1.5
    torch.testing.assert_close(out, _amplified(soft, hole, 1.5))
    assert _mean_gradient(out, hole) < _mean_gradient(out, _ring(hole, inside))


def test_a_hole_as_sharp_as_its_ring_is_left_alone():
    hole = _box(30, 60, 30, 60)
    rgb = torch.where(hole, _noise(2, 0.1, 0.9), _noise(3, 0.45, 0.55))  # sharper inside than around
    inside = torch.ones(N, N, dtype=torch.bool)
    out, gain = match_sharpness(rgb, hole, inside, max_gain=2)
    assert gain == 1.0 and torch.equal(out, rgb)


@pytest.mark.parametrize("case", ["gain 1", "no ring"])
def test_nothing_to_do(case):
    rgb, hole = _soften(_noise(4), _box(10, 80, 10, 80)), _box(10, 80, 10, 80)
    inside = torch.ones(N, N, dtype=torch.bool) if case == "gain 1" else hole.clone()
    out, gain = match_sharpness(rgb, hole, inside, max_gain=1 if case == "gain 1" else 2)
    assert gain == 1.0 and torch.equal(out, rgb)


def test_the_frames_padding_is_not_part_of_the_ring():
    """Pixels outside the photo (inside False: the frame's reflected padding) must not set the gain:
    changing them, well away from the hole, changes nothing in it."""
    hole = _box(30, 60, 40, 70)
    inside = torch.ones(N, N, dtype=torch.bool)
    inside[:, :25] = False  # within RING of the hole, but more than the blur's reach from it
    soft = _soften(_noise(5), hole)
    wild = soft.clone()
    wild[:, :, :25] = _noise(6, 0.0, 1.0)[:, :, :25]
    out_a, gain_a = match_sharpness(soft, hole, inside, max_gain=4)
    out_b, gain_b = match_sharpness(wild, hole, inside, max_gain=4)
    assert gain_a == gain_b
    assert torch.equal(out_a[:, hole], out_b[:, hole])
