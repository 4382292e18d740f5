"""Masks and framing: reading, checks, the working frame on odd sizes and border holes, paste-back."""
import numpy as np
import pytest
import torch
from PIL import Image

from npsynth_ext import masks as M


def test_box_mask_and_bounds():
    m = M.box_mask((10, 7), 2, 3, 4, 2)
    assert m.shape == (7, 10) and m.sum() == 8 and m[3:5, 2:6].all()
    for bad in [(-1, 0, 2, 2), (0, 0, 11, 1), (0, 6, 1, 2), (0, 0, 0, 3)]:
        with pytest.raises(M.MaskError):
            M.box_mask((10, 7), *bad)


@pytest.mark.parametrize("mode", ["L", "1", "RGB", "RGBA", "P"])
def test_read_mask_half_bright_is_hole(tmp_path, mode):
    arr = np.zeros((9, 13), np.uint8)
    arr[2:5, 3:11] = 255
    arr[7, 1] = 128  # an anti-aliased edge: at least half-bright is hole...
    arr[7, 2] = 127  # ...less is not
    img = Image.fromarray(arr)
    img = img.convert(mode) if mode not in ("1",) else Image.fromarray(arr > 0)
    if mode == "1":
        arr = (arr > 0).astype(np.uint8) * 255  # a 1-bit image keeps only on/off
    path = tmp_path / f"m_{mode}.png"
    img.save(path)
    mask = M.read_mask(str(path), (9, 13))
    expected = arr >= 128
    if mode in ("RGB", "RGBA", "P"):
        expected = np.asarray(img.convert("RGB")).max(-1) >= 128
    assert mask.dtype == bool and (mask == expected).all() and mask[2:5, 3:11].all()
    assert mask[7, 1] and mask[7, 2] == (mode == "1")


def test_read_mask_size_mismatch_missing_and_unreadable_files(tmp_path):
    Image.fromarray(np.full((9, 13), 255, np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(M.MaskError, match="mask .* is 13x9 but the image is 12x9"):
        M.read_mask(str(tmp_path / "m.png"), (9, 12))
    with pytest.raises(M.MaskError, match="mask not found: .*nothing.png"):
        M.read_mask(str(tmp_path / "nothing.png"), (9, 13))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(M.MaskError, match="cannot read mask .*junk.png"):
        M.read_mask(str(tmp_path / "junk.png"), (9, 13))


def test_read_mask_applies_the_exif_orientation(tmp_path):
    """A mask stored sideways with an EXIF rotation is read as a viewer shows it, like the photo."""
    arr = np.zeros((9, 13), np.uint8)
    arr[0, :4] = 255  # the stored image's top-left run
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(arr).save(tmp_path / "sideways.png", exif=exif)
    mask = M.read_mask(str(tmp_path / "sideways.png"), (13, 9))
    assert mask.shape == (13, 9) and mask[:4, -1].all() and mask.sum() == 4


def test_check_mask():
    with pytest.raises(M.MaskError, match="empty"):
        M.check_mask(np.zeros((5, 6)), (5, 6))
    with pytest.raises(M.MaskError, match="whole image"):
        M.check_mask(np.ones((5, 6)), (5, 6))
    with pytest.raises(M.MaskError, match="mask is 6x4 but the image is 6x5"):
        M.check_mask(np.ones((4, 6)), (5, 6))
    with pytest.raises(M.MaskError, match="2-D"):
        M.check_mask(np.ones((5, 6, 3)), (5, 6))


HOLES = {
    "middle": (97, 131, (40, 60, 50, 70)),
    "top_left_corner": (97, 131, (0, 20, 0, 30)),
    "bottom_right_corner": (97, 131, (80, 97, 100, 131)),
    "left_edge_tall": (300, 211, (10, 290, 0, 5)),
    "big_in_small_image": (150, 90, (10, 140, 10, 80)),
    "wide_image": (120, 900, (50, 70, 400, 700)),
    "one_pixel": (64, 64, (63, 64, 0, 1)),
}


@pytest.mark.parametrize("name", HOLES)
def test_frame_contains_hole_and_follows_rules(name):
    H, W, (y0, y1, x0, x1) = HOLES[name]
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    [f] = M.plan_frames(mask, max_frame=256)
    assert f.side % M.FRAME_MULTIPLE == 0 and f.side >= M.MIN_FRAME
    assert f.y0 <= y0 and f.y0 + f.side >= y1 and f.x0 <= x0 and f.x0 + f.side >= x1, "hole outside frame"
    extent = max(y1 - y0, x1 - x0)
    assert f.side >= extent
    for start, size in ((f.y0, H), (f.x0, W)):
        if f.side <= size:
            assert 0 <= start and start + f.side <= size, "frame leaves the image needlessly"
        else:
            assert start <= 0 and start + f.side >= size, "frame bigger than the image must cover all of it"
    assert f.work == min(f.side, 256)


@pytest.mark.parametrize("extent,side,levels", [(60, 128, 1), (250, 512, 3), (500, 1024, 4), (510, 1024, 4),
                                                (530, 1088, 4), (1000, 2048, 5), (1030, 2176, 5)])
def test_large_frames_halve_exactly_down_to_128(extent, side, levels):
    """Twice the hole, rounded up so that every level halves exactly and stays on relu4_1's 8-pixel grid;
    worked at the frame's own side when there is no cap."""
    mask = np.zeros((3000, 4000), bool)
    mask[100:100 + extent, 200:200 + extent] = True
    [f] = M.plan_frames(mask)
    sides = M.level_sides(f.side)
    assert f.side == f.work == side and len(sides) == levels and 128 <= sides[0] < 256
    assert all(fine == 2 * coarse for coarse, fine in zip(sides, sides[1:])) and all(s % 8 == 0 for s in sides)


def test_max_frame_must_be_a_side_a_frame_can_have():
    for good in (None, 128, 512, 992, 1024, 1088, 2048):
        M.check_max_frame(good)
    for bad in (100, 500, 1056, 2112):
        with pytest.raises(ValueError, match="max_frame must be"):
            M.check_max_frame(bad)


def test_reflect_matches_numpy_pad():
    for size in (1, 2, 5):
        idx = torch.arange(-13, size + 13)
        got = M._reflect(idx, size)
        want = np.pad(np.arange(size), 13, mode="reflect" if size > 1 else "edge")
        assert got.tolist() == want.tolist()


def test_downscaled_mask_keeps_tiny_holes():
    m = torch.zeros(64, 64, dtype=torch.bool)
    m[37, 5] = True
    small = M.downscale_mask(m, 16)
    assert small.sum() == 1 and small[9, 1]


@pytest.mark.parametrize("name", ["middle", "bottom_right_corner", "big_in_small_image"])
@pytest.mark.parametrize("max_frame", [128, 512])
def test_crop_then_paste_changes_only_the_hole(name, max_frame):
    H, W, (y0, y1, x0, x1) = HOLES[name]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    [f] = M.plan_frames(mask, max_frame)
    rgb, hole, inside = M.crop_frame(torch.from_numpy(image).permute(2, 0, 1).float() / 255, mask, f)
    assert rgb.shape == (3, f.work, f.work) and hole.shape == inside.shape == (f.work, f.work)
    assert hole.sum() >= mask.sum() * (f.work / f.side) ** 2 * 0.99 and not (hole & ~inside).any()
    out = M.paste_frame(image, mask, f, torch.full_like(rgb, 0.5))
    assert (out[~mask] == image[~mask]).all() and (np.abs(out[mask].astype(int) - 128) <= 1).all()
    if f.work == f.side:  # no resampling: pasting the crop back is the identity
        assert (M.paste_frame(image, mask, f, rgb) == image).all()


def test_the_padding_does_not_mirror_the_hole():
    """Where the frame is padded by reflection, the hole's mirror image would show the pixels under the hole
    (the object to remove): it holds the membrane of the other known pixels instead; the rest of the
    padding still mirrors the photo."""
    H, W = 60, 200
    image = torch.zeros(3, H, W)
    image[:, :, 120:] = 0.5
    mask = np.zeros((H, W), bool)
    mask[0:20, 30:70] = True  # on the top edge, in the dark half
    image[:, torch.from_numpy(mask)] = 1.0
    [f] = M.plan_frames(mask, None)
    rgb, hole, inside = M.crop_frame(image, mask, f)
    assert (~inside).any() and not (hole & ~inside).any()
    ys = torch.arange(f.y0, f.y0 + f.side)[:, None].expand(f.side, f.side)
    xs = torch.arange(f.x0, f.x0 + f.side)[None, :].expand(f.side, f.side)
    assert torch.equal(rgb[:, inside], image[:, ys[inside], xs[inside]])
    under = torch.from_numpy(mask)[M._reflect(ys, H), M._reflect(xs, W)]
    assert (rgb[:, under & ~inside] < 0.5).all()  # the hole held 1.0; its surroundings 0 or 0.5
    elsewhere = ~under & ~inside
    assert torch.equal(rgb[:, elsewhere], image[:, M._reflect(ys, H)[elsewhere], M._reflect(xs, W)[elsewhere]])


def test_api_masks_follow_the_mask_file_rule():
    """PIL, numpy and tensor masks read like mask files: a pixel whose brightest colour channel is at least
    half-bright is hole; alpha never counts."""
    from npsynth_ext.images import to_mask

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[1, 2] = (128, 0, 0)  # greyscale conversion would make this 38: not hole
    rgb[2, 2] = (127, 127, 127)  # just under half
    want = np.zeros((4, 5), bool)
    want[1, 2] = True
    assert (to_mask(Image.fromarray(rgb)) == want).all()
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 255, np.uint8)], -1)
    assert (to_mask(Image.fromarray(rgba)) == want).all() and (to_mask(rgba) == want).all()
    assert (to_mask(torch.from_numpy(rgb)) == want).all()
    grey_alpha = np.stack([want.astype(np.uint8) * 200, np.full((4, 5), 255, np.uint8)], -1)
    assert (to_mask(Image.fromarray(grey_alpha, "LA")) == want).all()


def holes_at(hw, *boxes):
    """A bool mask of size hw with a rectangle hole at each (y0, y1, x0, x1)."""
    mask = np.zeros(hw, bool)
    for y0, y1, x0, x1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def check_frames_partition_the_hole(mask, frames):
    """No two frames share an image pixel, and every hole pixel lies in one of them."""
    overlap = M.frames_overlap(frames, mask.shape)
    assert (overlap == np.eye(len(frames), dtype=bool)).all(), "frames overlap"
    covered = np.zeros_like(mask)
    for f in frames:
        covered[M.image_span(f, mask.shape)] = True
    assert covered[mask].all(), "a hole pixel is in no frame"


def test_separate_holes_get_frames_of_their_own():
    mask = holes_at((427, 640), (20, 70, 30, 90), (360, 410, 560, 620))  # two 60x50 holes, opposite corners
    frames = M.plan_frames(mask, max_frame=512)
    assert [f.side for f in frames] == [128, 128]
    assert frames[0] == M.frame_for_box((20, 70, 30, 90), mask.shape) and frames[1].y0 > 200, "not in order"
    check_frames_partition_the_hole(mask, frames)


def test_regions_whose_frames_overlap_share_one():
    """Two holes 80 px apart would get overlapping 128 frames: one frame, twice their extent, takes both.
    A third hole below the first, whose own frame overlaps neither, joins when that larger frame reaches
    it."""
    pair = [(100, 120, 100, 120), (100, 120, 200, 220)]
    frames = M.plan_frames(holes_at((400, 600), *pair))
    assert len(frames) == 1 and frames[0].side == 256
    third = (250, 270, 100, 120)
    own = [M.frame_for_box(b, (400, 600)) for b in pair + [third]]
    assert M.frames_overlap(own, (400, 600))[2, :2].sum() == 0, "the third hole's frame should start apart"
    chain = holes_at((400, 600), *pair, third)
    frames = M.plan_frames(chain)
    assert len(frames) == 1
    check_frames_partition_the_hole(chain, frames)


def test_regions_touching_by_a_corner_are_one_region():
    mask = holes_at((300, 300), (100, 110, 100, 110), (110, 120, 110, 120))
    assert len(M.plan_frames(mask)) == 1


@pytest.mark.parametrize("seed", range(4))
def test_frames_of_many_random_holes_partition_the_hole(seed):
    rng = np.random.default_rng(seed)
    H, W, n = 900, 1300, 8
    boxes = [(y, y + h, x, x + w) for y, x, h, w in zip(rng.integers(0, H - 40, n), rng.integers(0, W - 40, n),
                                                         rng.integers(1, 40, n), rng.integers(1, 40, n))]
    mask = holes_at((H, W), *boxes)
    frames = M.plan_frames(mask, max_frame=256)
    check_frames_partition_the_hole(mask, frames)
    assert all(mask[M.image_span(f, mask.shape)].any() for f in frames), "a frame without a hole"


def test_paste_writes_only_the_hole_within_its_frame():
    mask = holes_at((427, 640), (20, 70, 30, 90), (360, 410, 560, 620))
    image = np.zeros((427, 640, 3), np.uint8)
    first = M.plan_frames(mask)[0]
    out = M.paste_frame(image, mask, first, torch.ones(3, first.work, first.work))
    assert (out[20:70, 30:90] == 255).all() and out.sum() == 60 * 50 * 3 * 255
