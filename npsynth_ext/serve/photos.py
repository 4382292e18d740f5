"""Uploaded photos and masks read with the CLI's readers (npsynth_ext.images), and the result written back
in the photo's own format and kind. Everything stays in memory: no file is written on the server."""
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from npsynth_ext import masks
from npsynth_ext.images import LOSSY_FORMATS, open_image, read_photo, restore, writable_pixels
from npsynth_ext.masks import check_mask

# The result's format where the photo's cannot hold it: one Pillow reads but cannot write, one that cannot
# keep the photo's kind (transparency, 16 bits), or GIF, whose 256 colours would change pixels outside
# the hole once the fill adds colours.
FALLBACK_FORMAT = "PNG"
NOT_WRITTEN = ("GIF",)
JPEG_QUALITY = 95  # the CLI's default --quality
USUAL_EXTENSIONS = {"JPEG": ".jpg", "TIFF": ".tif", "PNG": ".png"}


class BadUpload(ValueError):
    """An upload that cannot be filled; its message names the field and the problem."""
    status = 422  # HTTP: a file that was read but cannot be filled as it is


class NotAnImage(BadUpload):
    status = 400


@dataclass
class Upload:
    """A photo as read from its bytes, the format it came in and its file name."""
    photo: object  # images.Photo
    format: str
    filename: str
    lossless: bool = False  # a lossless WebP: written back lossless


def read_upload(data, filename):
    """The photo in `data` (bytes of any format Pillow reads), or BadUpload with the reason."""
    try:
        with open_image(io.BytesIO(data)) as img:  # the header only: refuses a decompression bomb
            fmt = img.format
        return Upload(read_photo(io.BytesIO(data)), fmt, filename, fmt == "WEBP" and _lossless_webp(data))
    except (UnidentifiedImageError, OSError) as exc:
        raise NotAnImage(f"image: not an image Pillow can read ({_why_unreadable(exc)})") from None
    except ValueError as exc:  # a refused kind of photo, or a decompression bomb
        raise BadUpload(f"image: {exc}") from None


def read_mask(data, image_hw):
    """The hole of the mask image in `data` (masks.read_mask, the CLI's reader: white = hole, upright like
    the photo), checked against the photo's (H, W); BadUpload otherwise."""
    try:
        return check_mask(masks.read_mask(io.BytesIO(data), image_hw, name="mask"), image_hw)
    except masks.UnreadableMask as exc:
        raise NotAnImage(f"mask: not an image Pillow can read ({_why_unreadable(exc.__cause__)})") from None
    except ValueError as exc:
        raise BadUpload(str(exc)) from None


def encode_result(upload, filled_rgb, hole):
    """(bytes, media type, file name) of the photo with its hole taken from `filled_rgb`, in the upload's
    format and kind (images.restore), with its ICC profile and EXIF; PNG where that format cannot be
    written. Every pixel outside the hole keeps its bytes in a lossless format."""
    photo = upload.photo
    pixels = restore(photo, filled_rgb, hole)
    fmt = upload.format if _writable(upload.format) else FALLBACK_FORMAT
    try:
        image = writable_pixels(pixels, photo.mode, "result" + _extension(fmt))
    except ValueError:  # the format would lose the photo's transparency or 16 bits: PNG keeps every kind
        fmt = FALLBACK_FORMAT
        image = writable_pixels(pixels, photo.mode, "result" + _extension(fmt))
    lossy = fmt in LOSSY_FORMATS and not upload.lossless
    options = {"icc_profile": photo.icc_profile, "exif": photo.exif, "quality": JPEG_QUALITY if lossy else None,
               "lossless": True if upload.lossless else None}
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **{k: v for k, v in options.items() if v is not None})
    return buffer.getvalue(), Image.MIME.get(fmt, "application/octet-stream"), _result_name(upload.filename, fmt)


def _lossless_webp(data):
    """Whether the WebP file `data` holds its picture losslessly (a VP8L chunk; lossy ones have VP8)."""
    at = 12  # after RIFF <size> WEBP: chunks of a fourcc, a little-endian size and the data, padded to even
    while at + 8 <= len(data):
        fourcc, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        at += 8 + size + (size & 1)
    return False


def _writable(fmt):
    Image.init()  # every plugin loaded, so that Image.SAVE lists every format Pillow can write
    return fmt in Image.SAVE and fmt not in NOT_WRITTEN and bool(_extension(fmt))


def _extension(fmt):
    """The usual file extension of Pillow format `fmt` ('' if Pillow registers none)."""
    if fmt in USUAL_EXTENSIONS:
        return USUAL_EXTENSIONS[fmt]
    return next((ext for ext, f in Image.registered_extensions().items() if f == fmt), "")


def _result_name(filename, fmt):
    """NAME_filled.EXT for upload NAME.EXT, EXT kept when it names `fmt`."""
    stem, dot, ext = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].rpartition(".")
    if not dot:
        stem, ext = ext, ""
    ext = "." + ext if Image.registered_extensions().get("." + ext.lower()) == fmt else _extension(fmt)
    return f"{stem or 'photo'}_filled{ext}"


def _why_unreadable(exc):
    if isinstance(exc, UnidentifiedImageError):  # its message names our in-memory buffer, not the file
        return "Pillow does not recognise its format"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
