"""Image conversions at the API boundary (numpy arrays, PIL images and tensors in, the same kind out), and
the one atomic file writer (images, and the content network's checkpoints)."""
import os

import numpy as np
import torch


def to_rgb_u8(image):
    """Any supported image as an (H, W, 3) uint8 array, and a function turning such an array back into the
    caller's kind: PIL image -> PIL image (RGB), numpy -> uint8 numpy, tensor -> tensor of the input's
    layout ([3, H, W] or [H, W, 3]) and dtype (float in 0..1, or uint8)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL comes with torchvision
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB")).copy(), lambda out: Image.fromarray(out, "RGB")
    if isinstance(image, torch.Tensor):
        return _tensor_to_u8(image)
    if isinstance(image, np.ndarray):
        return _array_to_u8(image), lambda out: out
    raise TypeError(f"image must be a numpy array, PIL image or torch tensor, got {type(image).__name__}")


def _array_to_u8(arr):
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("image has NaN or infinite values")
        return (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    raise TypeError(f"image array must be uint8 or float in 0..1, got {arr.dtype}")


def _tensor_to_u8(t):
    """[3, H, W] (channels first) or [H, W, 3]; uint8 or float 0..1."""
    t = t.detach().cpu()
    channels_first = t.dim() == 3 and t.shape[0] in (1, 3, 4) and t.shape[-1] not in (3, 4)
    arr = t.permute(1, 2, 0).numpy() if channels_first else t.numpy()
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    u8 = _array_to_u8(arr)
    floating = t.is_floating_point()

    def back(out):
        res = torch.from_numpy(out)
        if floating:
            res = res.to(t.dtype) / 255
        return res.permute(2, 0, 1).contiguous() if channels_first else res

    return u8, back


def to_mask(mask):
    """A mask given as numpy array, tensor or PIL image, as a bool numpy array: a pixel is hole if any of its
    colour channels is nonzero (alpha is ignored), however dark."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    elif not isinstance(mask, np.ndarray):
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover
            Image = None
        if Image is not None and isinstance(mask, Image.Image):
            mask = np.asarray(mask.convert("RGBA") if mask.mode in ("P", "PA") else mask)
        else:
            raise TypeError(f"mask must be a numpy array, tensor or PIL image, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[-1] in (1, 2, 3, 4):  # channels last: grey(+alpha) or colour(+alpha)
        mask = (mask[..., :3] if mask.shape[-1] >= 3 else mask[..., :1]).any(-1)
    return mask != 0


def write_atomically(path, write):
    """Call write(tmp) to fill a temporary file in `path`'s folder, then rename it into place: `path` is
    never half-written, and nothing is left behind on failure."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_image_atomically(arr, path):
    """Write an (H, W, 3) uint8 array in the format its extension names, atomically (write_atomically)."""
    from PIL import Image

    fmt = Image.registered_extensions()[os.path.splitext(path)[1].lower()]
    write_atomically(path, lambda tmp: Image.fromarray(arr, "RGB").save(tmp, format=fmt))
