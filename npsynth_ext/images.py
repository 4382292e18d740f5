"""Image conversions at the API boundary (numpy arrays, PIL images and tensors in, the same kind out),
photos read from and written to files in their own kind (greyscale, alpha, 16 bits, ICC profile, EXIF),
and the one atomic file writer (images, and the content network's checkpoints)."""
import io
import os
from dataclasses import dataclass

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
    """A mask given as numpy array, tensor or PIL image, as a bool numpy array. A pixel is hole when its
    brightest colour channel is at least half of full scale (alpha never counts): >= 128 of 255 for 8 bits,
    >= 32768 of 65535 for 16 bits, >= 0.5 for floats (0..1), True for bools. An anti-aliased or
    JPEG-compressed edge is so cut along its middle, and faint compression noise is never hole."""
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
        mask = (mask[..., :3] if mask.shape[-1] >= 3 else mask[..., :1]).max(-1)
    half = _half_scale(mask.dtype)
    hole = mask >= half
    if not hole.any() and (mask != 0).any():
        raise ValueError(f"mask has no pixel at half brightness or more (its brightest is {mask.max()}, a hole "
                         f"starts at {half}); for a 0/1 mask pass a bool array")
    return hole


def _half_scale(dtype):
    """The least value that is hole in a mask of this dtype: half of the dtype's full scale, rounded up."""
    if dtype == np.bool_:
        return True
    if dtype.kind == "u" and dtype.itemsize in (1, 2):  # either byte order (PIL's I;16B is big-endian)
        return 1 << (8 * dtype.itemsize - 1)
    if np.issubdtype(dtype, np.floating):
        return 0.5
    raise TypeError(f"mask must be bool, uint8 (0..255), uint16 (0..65535) or float (0..1), got {dtype}")


def temporary_path(path, pid):
    """Where process `pid` writes `path` before renaming it into place: a hidden file beside it, named
    .NAME.tmpPID, so that folder listings skip it and no two processes share one."""
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{pid}")


def write_atomically(path, write):
    """Call write(tmp) to fill a temporary file in `path`'s folder (temporary_path), then rename it into
    place: `path` is never half-written, and nothing is left behind on failure."""
    tmp = temporary_path(path, os.getpid())
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_image_atomically(arr, path):
    """Write an (H, W, 3) uint8 array in the format its extension names, atomically (write_atomically)."""
    from PIL import Image

    fmt = output_format(path)
    write_atomically(path, lambda tmp: Image.fromarray(arr, "RGB").save(tmp, format=fmt))


# Photo files. The fill works on 8-bit RGB; a Photo keeps the file's own pixels beside that view so the
# result goes back into them: only hole pixels are replaced, every other byte (alpha, 16-bit values)
# stays as read. Docs: docs/inputs.md.

OPAQUE = 255
# Pillow modes taken as they are, and the ones converted first without loss of anything the fill uses.
NATIVE_MODES = ("RGB", "RGBA", "L", "LA", "I;16")
LOSSLESS_CONVERSION = {"1": "L", "La": "LA", "RGBa": "RGBA", "PA": "RGBA", "YCbCr": "RGB",
                       "I;16B": "I;16", "I;16L": "I;16", "I;16N": "I;16"}
REFUSED_MODES = {
    "CMYK": "CMYK is not supported: convert the photo to RGB with its colour profile first (a plain "
            "conversion would shift its colours)",
    "F": "32-bit floating-point images are not supported: convert to 8 or 16 bits first",
}
KEEPS_16_BITS = ("PNG", "TIFF")
KEEPS_ALPHA = ("PNG", "TIFF", "WEBP")
LOSSY_FORMATS = ("JPEG", "WEBP")  # the ones --quality applies to


@dataclass
class Photo:
    """A photo read from a file, upright. `pixels` holds it in `mode` (one of NATIVE_MODES): uint8
    (H, W, 3|4) for RGB/RGBA, uint8 (H, W) or (H, W, 2) for L/LA, uint16 (H, W) for I;16. `rgb` is the
    (H, W, 3) uint8 view the fill works on (grey copied to three channels, 16 bits rounded to 8)."""
    pixels: np.ndarray
    mode: str
    rgb: np.ndarray
    icc_profile: bytes = None
    exif: bytes = None  # orientation tag removed: the pixels are upright

    @property
    def alpha(self):
        return self.pixels[..., -1] if self.mode in ("RGBA", "LA") else None


def read_photo(path):
    """The photo at `path` (a path or a binary file) as a Photo, with its EXIF orientation applied. Raises
    ValueError with a one-line reason for a kind it cannot fill faithfully or a decompression bomb
    (open_image), OSError if unreadable."""
    with open_image(path) as img:
        refuse_16_bit_colour(img)
        return photo_from_pil(open_upright(img))


# Pillow's own limit (twice its default Image.MAX_IMAGE_PIXELS), past which it calls a file a decompression
# bomb; fixed here so that the refusal holds even where a program has raised or lifted Pillow's.
MAX_PIXELS = 2 * 89_478_485


def open_image(source):
    """Image.open(source) (a path or a binary file), which reads only the header. A header claiming more
    than MAX_PIXELS pixels (a decompression bomb: a small file that would decode into gigabytes) is refused
    with ValueError before any pixel is decoded."""
    from PIL import Image

    try:
        img = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"refused as a possible decompression bomb: {exc}") from None
    width, height = img.size
    if width * height > MAX_PIXELS:
        img.close()
        raise ValueError(f"refused as a possible decompression bomb: its header claims {width}x{height} "
                         f"pixels, more than {MAX_PIXELS}")
    return img


def open_upright(img):
    """The loaded image as a viewer shows it: EXIF orientation applied, the orientation tag removed."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(img)


def refuse_16_bit_colour(img):
    """Pillow reads 16-bit-per-channel colour as 8 bits: a fill of it would silently halve its depth. Its
    decoder's raw mode (before loading) still says what the file holds."""
    raw_modes = [t.args if isinstance(t.args, str) else t.args[0] for t in img.tile if t.args]
    if img.mode in ("RGB", "RGBA") and any(";16" in m for m in raw_modes):
        raise ValueError("16-bit colour is not supported (it would be written back as 8 bits): convert the "
                         "photo to 8 bits per channel first")


def photo_from_pil(img):
    mode = _native_mode(img)
    if mode != img.mode:
        img = img.convert(mode)
    pixels = np.asarray(img)
    if mode == "I;16":
        pixels = pixels.astype(np.uint16)  # native byte order, and "I" (int32) values that fit
    return Photo(pixels, mode, _rgb_view(pixels, mode), img.info.get("icc_profile"), _exif_bytes(img))


def _native_mode(img):
    """The NATIVE_MODES mode `img` is read as, or ValueError with the reason it is refused."""
    if img.mode in NATIVE_MODES:
        return img.mode
    if img.mode in LOSSLESS_CONVERSION:
        return LOSSLESS_CONVERSION[img.mode]
    if img.mode == "P":  # a palette: its colours, with alpha if some are transparent
        return "RGBA" if img.has_transparency_data else "RGB"
    if img.mode == "I":  # 32-bit integers: Pillow's reading of some 16-bit greyscale files
        low, high = img.getextrema()
        if 0 <= low and high <= 65535:
            return "I;16"
        raise ValueError(f"32-bit integer images are not supported (values {low}..{high} do not fit 16 bits)")
    raise ValueError(REFUSED_MODES.get(img.mode, f"images of Pillow mode {img.mode} are not supported"))


def _rgb_view(pixels, mode):
    if mode == "RGB":
        return pixels
    if mode == "RGBA":
        return np.ascontiguousarray(pixels[..., :3])
    grey = pixels[..., 0] if mode == "LA" else pixels
    if mode == "I;16":
        grey = ((grey.astype(np.uint32) + 128) // 257).astype(np.uint8)  # 0..65535 -> 0..255, rounded
    return np.repeat(grey[..., None], 3, -1)


def _exif_bytes(img):
    exif = img.getexif()
    return exif.tobytes() if len(exif) else None


def alpha_hole(photo):
    """--mask alpha: the hole is every pixel more than half transparent (alpha < 128)."""
    if photo.alpha is None:
        raise ValueError("--mask alpha needs a photo with transparency; this one has no alpha channel")
    return photo.alpha < (OPAQUE + 1) // 2


def restore(photo, filled_rgb, hole, opaque_hole=False):
    """The photo in its own mode with the hole's pixels taken from `filled_rgb` ((H, W, 3) uint8); grey
    modes take their luma (ITU-R 601, as Pillow), 16 bits scale it by 257. Alpha is kept as it was, or
    made opaque in the hole (`opaque_hole`, for --mask alpha: what was transparent is now filled)."""
    out = photo.pixels.copy()
    if photo.mode in ("RGB", "RGBA"):
        out[..., :3][hole] = filled_rgb[hole]
    elif photo.mode == "I;16":
        out[hole] = _luma(filled_rgb[hole]).astype(np.uint16) * 257  # 255 -> 65535
    else:
        grey = out[..., 0] if photo.mode == "LA" else out
        grey[hole] = _luma(filled_rgb[hole])
    if opaque_hole and photo.alpha is not None:
        out[..., -1][hole] = OPAQUE
    return out


def _luma(rgb):
    """uint8 luma of (..., 3) uint8 colours, as Pillow's convert("L") computes it (16-bit fixed point)."""
    weighted = rgb.astype(np.uint32) @ np.array([19595, 38470, 7471], np.uint32)
    return ((weighted + 0x8000) >> 16).astype(np.uint8)


def output_format(path):
    """The Pillow format `path`'s extension names, or ValueError."""
    from PIL import Image

    ext = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"output {path}: unknown image extension {ext or '(none)'!r}; use e.g. .png or .jpg")
    return fmt


def writable_pixels(pixels, mode, path):
    """`pixels` (a restored Photo's, in `mode`) as the Pillow image to write at `path`, or ValueError with a
    one-line reason when its format would lose something: 16 bits outside PNG and TIFF, transparency
    outside PNG, TIFF and WebP. An alpha channel that is opaque everywhere is dropped where the format
    has none (nothing is lost)."""
    from PIL import Image

    fmt = output_format(path)
    name = os.path.basename(path)
    if mode == "I;16" and fmt not in KEEPS_16_BITS:
        raise ValueError(f"output {name}: the photo is 16-bit and {fmt} would keep 8 bits; write .png or .tif")
    if mode in ("RGBA", "LA") and fmt not in KEEPS_ALPHA:
        if (pixels[..., -1] != OPAQUE).any():
            raise ValueError(f"output {name}: the photo has transparent pixels and {fmt} cannot keep them; "
                             "write .png, .tif or .webp")
        pixels, mode = pixels[..., :-1], mode[:-1]
        pixels = pixels[..., 0] if mode == "L" else np.ascontiguousarray(pixels)
    image = Image.fromarray(pixels)
    try:  # formats Pillow can read but not write, or not in this mode
        image.crop((0, 0, 1, 1)).save(io.BytesIO(), format=fmt)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"output {name}: cannot write a {mode} image as {fmt} ({exc})") from None
    return image


def write_photo_atomically(photo, pixels, path, quality=95):
    """Write restored `pixels` of `photo` at `path` in the format its extension names (writable_pixels),
    atomically, with the photo's ICC profile and EXIF (orientation cleared); `quality` for JPEG and WebP."""
    image = writable_pixels(pixels, photo.mode, path)
    fmt = output_format(path)
    options = {"icc_profile": photo.icc_profile, "exif": photo.exif,
               "quality": quality if fmt in LOSSY_FORMATS else None}
    options = {k: v for k, v in options.items() if v is not None}
    write_atomically(path, lambda tmp: image.save(tmp, format=fmt, **options))
