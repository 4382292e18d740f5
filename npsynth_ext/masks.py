"""Masks and framing: read or draw the hole, check it, place it in a square working frame, paste back.

The paper works on a 512x512 frame with a 256x256 hole in its middle. We do the same for any image and any
hole: take the hole's bounding box, grow it into a square about twice the hole's size (at least MIN_FRAME),
centre it on the hole and slide it to stay inside the image where it can; what still falls outside the
image is padded by reflection and marked as padding (never a source of texture). A hole of several
separate regions gets a frame per region, or per group of regions whose frames would overlap
(plan_frames). A frame is worked at its own resolution, at more levels the larger it is (level_sides),
unless the caller caps its side with max_frame: then it is worked on downscaled. Only hole pixels are ever
written back.
"""
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .images import open_image, open_upright, to_mask
from .membrane import membrane

# The smallest side a frame is worked at: VGG sees little in a smaller image (relu4_1 of 64 px is 8x8).
MIN_LEVEL = 128
MIN_FRAME = MIN_LEVEL
FRAME_MULTIPLE = 32  # the least a frame's side is a multiple of (see frame_multiple)


class MaskError(ValueError):
    """The mask does not describe a fillable hole."""


class UnreadableMask(MaskError):
    """The mask's file is not an image that can be read (its __cause__ says why)."""


def read_mask(source, image_hw, name=None):
    """The hole of a mask image, as a bool [H, W] array: upright as a viewer shows it (EXIF orientation
    applied, as the photo is), a pixel is hole where its brightest colour channel is at least half-bright
    (images.to_mask); it must be the photo's size image_hw. `source` is a path or a binary file; `name` is
    how the errors call it (default: "mask PATH"). Every failure is a MaskError; a decompression bomb is
    refused before it is decoded (images.open_image)."""
    from PIL import UnidentifiedImageError

    if isinstance(source, (str, os.PathLike)):
        name = name or f"mask {source}"
        if not os.path.isfile(source):
            raise MaskError(f"mask not found: {source}")
    name = name or "mask"
    try:
        with open_image(source) as img:
            hole = to_mask(open_upright(img))
    except (UnidentifiedImageError, OSError) as exc:
        raise UnreadableMask(f"cannot read {name}: {exc}") from exc
    except (TypeError, ValueError) as exc:  # a decompression bomb, or no pixel bright enough to be hole
        raise MaskError(f"{name}: {exc}") from None
    if hole.shape != tuple(image_hw):
        raise MaskError(f"{name} is {hole.shape[1]}x{hole.shape[0]} but the image is {image_hw[1]}x{image_hw[0]}")
    return hole


def box_mask(size, x, y, w, h):
    """A rectangular hole at (x, y) of w x h pixels in an image of size (W, H)."""
    W, H = size
    if w <= 0 or h <= 0:
        raise MaskError(f"box size must be positive, got {w}x{h}")
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise MaskError(f"box {x},{y} {w}x{h} does not fit in the {W}x{H} image")
    mask = np.zeros((H, W), dtype=bool)
    mask[y:y + h, x:x + w] = True
    return mask


def check_mask(mask, image_hw):
    """Mask must be a 2-D array of the image's size with a hole that is neither empty nor everything."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise MaskError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    if tuple(mask.shape) != tuple(image_hw):
        raise MaskError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image_hw[1]}x{image_hw[0]}")
    mask = mask != 0
    if not mask.any():
        raise MaskError("mask is empty: there is no hole to fill")
    if mask.all():
        raise MaskError("mask covers the whole image: nothing is left to fill it from")
    return mask


@dataclass(frozen=True)
class Frame:
    """A square window of side `side` at (y0, x0) in image coordinates (it may stick out of the image),
    worked on at `work` x `work` pixels."""
    y0: int
    x0: int
    side: int
    work: int


def level_sides(side):
    """The sides a frame of `side` is worked at, coarse to fine: side, side/2, side/4, ... down to the last
    at or above MIN_LEVEL (so the coarsest is 128 to 255). A 512 frame gets the paper's three, a 2048 frame
    five."""
    sides = [side]
    while sides[0] // 2 >= MIN_LEVEL:
        sides.insert(0, sides[0] // 2)
    return sides


def frame_multiple(side):
    """What a frame of about `side` has its side rounded up to a multiple of: every level (level_sides)
    must halve exactly and stay a multiple of 8, so that it pools down to relu4_1's grid evenly. 32 up to
    three levels (below 1024), then twice as much per extra level."""
    return max(FRAME_MULTIPLE, 8 << (len(level_sides(side)) - 1))


def check_max_frame(max_frame):
    """max_frame is None (no cap) or a side a frame could have."""
    if max_frame is not None and (max_frame < MIN_FRAME or max_frame % frame_multiple(max_frame)):
        raise ValueError(f"max_frame must be at least {MIN_FRAME} and a multiple of {FRAME_MULTIPLE} (of 64 from "
                         f"1024, of 128 from 2048, ...), or None for no cap; got {max_frame}")


def frame_for_box(box, image_hw, max_frame=None):
    """The working frame for a hole whose bounding box is (y0, y1, x0, x1) in an image of image_hw: twice
    the hole's extent (but not past the image's larger side), at least MIN_FRAME, rounded up to a multiple
    of frame_multiple, centred on the hole and kept inside the image where possible; worked at its own
    side, or at max_frame if that is smaller."""
    check_max_frame(max_frame)
    H, W = image_hw
    y0, y1, x0, x1 = (int(v) for v in box)
    extent = max(y1 - y0, x1 - x0)
    # Twice the hole, but no bigger than the image needs: past that, the frame would only add padding.
    side = max(MIN_FRAME, extent, min(2 * extent, max(H, W)))
    # Rounding up can reach the next level count only at a power of two times MIN_LEVEL, which is a
    # multiple of that count's frame_multiple too.
    multiple = frame_multiple(side)
    side = -(-side // multiple) * multiple

    def place(lo, hi, size):
        start = (lo + hi) // 2 - side // 2
        if side <= size:
            start = min(max(start, 0), size - side)  # slide inside the image
        else:
            start = min(max(start, size - side), 0)  # cover the whole image, padding both sides
        return int(start)

    work = side if max_frame is None else min(side, max_frame)
    return Frame(place(y0, y1, H), place(x0, x1, W), int(side), int(work))


def plan_frames(mask, max_frame=None):
    """The working frames of a hole made of several regions, so that the work grows with the holes rather
    than with the photo: each connected region (8-neighbours) gets the frame of its box (frame_for_box), and
    regions whose frames overlap are framed together, until no two frames share an image pixel. Every hole
    pixel then lies in exactly one frame and no frame holds another frame's hole, so each frame is filled
    from its own surroundings (its hole is the mask within it). Frames come in the order of their regions'
    first pixels (top to bottom, left to right)."""
    from scipy import ndimage
    from scipy.sparse.csgraph import connected_components

    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    boxes = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(labels)])
    while True:
        frames = [frame_for_box(box, mask.shape, max_frame) for box in boxes]
        count, group = connected_components(frames_overlap(frames, mask.shape), directed=False)
        if count == len(frames):
            return frames
        boxes = np.array([union_box(boxes[group == g]) for g in range(count)])


def union_box(boxes):
    """The bounding box (y0, y1, x0, x1) of boxes [n, 4] given the same way."""
    return boxes[:, 0].min(), boxes[:, 1].max(), boxes[:, 2].min(), boxes[:, 3].max()


def frames_overlap(frames, image_hw):
    """[n, n] bool: whether frames i and j share a pixel of the image (padding outside it does not count)."""
    spans = np.array([(rows.start, rows.stop, cols.start, cols.stop)
                      for rows, cols in (image_span(f, image_hw) for f in frames)])

    def intersect(lo, hi):
        return (lo[:, None] < hi[None, :]) & (lo[None, :] < hi[:, None])

    return intersect(spans[:, 0], spans[:, 1]) & intersect(spans[:, 2], spans[:, 3])


def image_span(frame, image_hw):
    """(rows, columns): the slices of the image that the frame covers."""
    H, W = image_hw
    return (slice(max(frame.y0, 0), min(frame.y0 + frame.side, H)),
            slice(max(frame.x0, 0), min(frame.x0 + frame.side, W)))


def crop_frame(image, mask, frame):
    """Cut the frame out of image [3, H, W] (float 0..1) and mask [H, W] and scale it to the working size.

    Returns (rgb [3, n, n], hole [n, n] bool, inside [n, n] bool): outside the image the frame is filled
    by reflection and `inside` is False there. The reflection of the hole itself holds the pixels the fill
    is to replace (the object being removed): there the padding is the membrane fill of the frame's other
    known pixels instead, so nothing under the hole is seen as context."""
    _, H, W = image.shape
    s = frame.side
    ys = torch.arange(frame.y0, frame.y0 + s)
    xs = torch.arange(frame.x0, frame.x0 + s)
    inside = ((ys >= 0) & (ys < H))[:, None] & ((xs >= 0) & (xs < W))[None, :]
    rgb = image[:, _reflect(ys, H)][:, :, _reflect(xs, W)]
    reflected = torch.as_tensor(mask)[_reflect(ys, H)][:, _reflect(xs, W)]
    hole = reflected & inside
    mirrored = reflected & ~inside
    if mirrored.any():
        rgb = torch.where(mirrored, membrane(rgb, ~reflected), rgb)
    if frame.work != s:
        rgb = F.interpolate(rgb[None], size=(frame.work,) * 2, mode="area")[0]
        hole = downscale_mask(hole, frame.work)
        inside = ~downscale_mask(~inside, frame.work)
    return rgb, hole, inside


def _reflect(idx, size):
    """Mirror indices outside [0, size) back in (edge pixel not repeated), for any overshoot."""
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= size, period - idx, idx)


def dilate(mask, radius):
    """Grow a bool mask by `radius` pixels (a square of side 2 * radius + 1 around every set pixel)."""
    return F.max_pool2d(mask[None, None].float(), 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0


def downscale_mask(mask, size):
    """Shrink a bool mask to size (n or (h, w)): a pixel is set if any pixel it covers is (a hole never
    shrinks away)."""
    return F.adaptive_max_pool2d(mask[None, None].float(), size)[0, 0] > 0


def paste_frame(image_u8, mask, frame, filled):
    """Write the hole pixels of `filled` (the frame's result, [3, work, work] float 0..1) into a copy of
    image_u8 (H, W, 3 uint8): the mask's pixels within the frame; every other pixel keeps its bytes."""
    H, W, _ = image_u8.shape
    s = frame.side
    if frame.work != s:
        filled = F.interpolate(filled[None], size=(s, s), mode="bicubic", align_corners=False)[0]
    values = (filled.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    out = image_u8.copy()
    rows, cols = image_span(frame, (H, W))
    ys, xs = np.nonzero(mask[rows, cols])
    ys, xs = ys + rows.start, xs + cols.start
    out[ys, xs] = values[ys - frame.y0, xs - frame.x0]
    return out
