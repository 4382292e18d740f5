"""The files photographers have, through python -m npsynth_ext.fill: EXIF orientation, greyscale, palette,
RGBA, 16-bit and CMYK inputs, --mask alpha, anti-aliased masks, output formats, --quality and ICC profiles.

Most tests replace the fill with a paint of one known colour over the hole it is given, so they can check
the hole the CLI read and every byte it wrote; test_greyscale_real_fill runs the real one."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from npsynth_ext import fill_command as cli
from npsynth_ext import pipeline

PAINT = np.array([200, 100, 50], np.uint8)
PAINT_LUMA = (200 * 19595 + 100 * 38470 + 50 * 7471 + 0x8000) >> 16  # Pillow's convert("L") of PAINT
H, W = 24, 32
FAST = ["--iters", "2", "1", "1", "--quiet"]


@pytest.fixture
def painted(monkeypatch):
    """Replace the fill with a paint of PAINT over the hole; returns the (image, hole) pairs it was given."""
    calls = []

    def paint(image, hole, opts, timings=None, net=None):
        calls.append((image.copy(), hole.copy()))
        out = image.copy()
        out[hole] = PAINT
        return out

    monkeypatch.setattr(pipeline, "fill_u8", paint)
    return calls


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def gradient(dtype=np.uint8, scale=1):
    """An (H, W) ramp with every value distinct enough to catch a shifted or rescaled pixel."""
    return ((np.arange(H * W).reshape(H, W) * 7 % 251) * scale).astype(dtype)


def colour_photo():
    g = gradient()
    return np.stack([g, g[::-1], 255 - g], -1)


def box_hole():
    hole = np.zeros((H, W), bool)
    hole[5:12, 8:20] = True
    return hole


def save_mask(path, hole):
    Image.fromarray(hole.astype(np.uint8) * 255).save(path)
    return path


def expect_one_line_error(code, err, pattern, folder, before):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npsynth_ext.fill: error:") and pattern in lines[0], err
    assert sorted(p.name for p in folder.iterdir()) == before, "a refused run left files behind"


def test_exif_orientation_is_applied_before_the_mask_and_cleared_in_the_output(tmp_path, capsys, painted):
    stored = colour_photo()  # as the camera stored it: H x W, to be shown rotated 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to view
    exif[0x010F] = "TestCam"  # Make: must survive
    Image.fromarray(stored).save(tmp_path / "in.png", exif=exif.tobytes())
    upright = np.rot90(stored, -1)  # W x H, as a viewer shows it
    hole = np.zeros(upright.shape[:2], bool)
    hole[2:9, 3:10] = True  # near the viewer's top left
    save_mask(tmp_path / "mask.png", hole)
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", tmp_path / "mask.png", "-o", tmp_path / "out.png",
                        *FAST)
    assert code == 0, err
    seen_image, seen_hole = painted[0]
    assert (seen_image == upright).all() and (seen_hole == hole).all()
    out = Image.open(tmp_path / "out.png")
    assert out.size == (H, W) and 0x0112 not in out.getexif() and out.getexif()[0x010F] == "TestCam"
    pixels = np.asarray(out)
    assert (pixels[~hole] == upright[~hole]).all() and (pixels[hole] == PAINT).all()
    # A mask drawn on the stored (sideways) pixels no longer fits.
    save_mask(tmp_path / "sideways.png", np.zeros((H, W), bool))
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", tmp_path / "sideways.png", "-o", tmp_path / "o2.png")
    assert code == 2 and f"is {W}x{H} but the image is {H}x{W}" in err


@pytest.mark.parametrize("bilevel", [False, True], ids=["L", "1-bit"])
def test_greyscale_is_written_back_greyscale(tmp_path, capsys, painted, bilevel):
    grey = gradient()
    if bilevel:
        grey = np.where(grey > 120, 255, 0).astype(np.uint8)
        Image.fromarray(grey > 0).save(tmp_path / "in.png")  # mode "1", filled and written as 8-bit grey
    else:
        Image.fromarray(grey).save(tmp_path / "in.png")
    hole = box_hole()
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", save_mask(tmp_path / "m.png", hole), "-o",
                        tmp_path / "out.png", *FAST)
    assert code == 0, err
    assert (painted[0][0] == grey[..., None]).all()  # the fill sees the grey in all three channels
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "L"
    pixels = np.asarray(out)
    assert (pixels[~hole] == grey[~hole]).all() and (pixels[hole] == PAINT_LUMA).all()


def test_palette_is_written_as_rgb_and_rgba_with_transparency(tmp_path, capsys, painted):
    photo = Image.fromarray(colour_photo()).quantize(16)
    photo.save(tmp_path / "p.png")
    photo.info["transparency"] = 3  # palette entry 3 is transparent
    photo.save(tmp_path / "pt.png", transparency=3)
    hole = box_hole()
    mask = save_mask(tmp_path / "m.png", hole)
    for name, mode in [("p.png", "RGB"), ("pt.png", "RGBA")]:
        code, err = run_cli(capsys, tmp_path / name, "--mask", mask, "-o", tmp_path / f"out_{name}", *FAST)
        assert code == 0, err
        want = np.asarray(Image.open(tmp_path / name).convert(mode))
        out = Image.open(tmp_path / f"out_{name}")
        pixels = np.asarray(out)
        assert out.mode == mode and (pixels[~hole] == want[~hole]).all() and (pixels[hole][:, :3] == PAINT).all()
    assert (np.asarray(photo) == 3).any() and (pixels[..., 3] == want[..., 3]).all()  # transparency kept


def rgba_photo():
    alpha = gradient()  # every alpha value differs: a rewritten alpha shows
    alpha[:, :4] = 0  # a fully transparent strip on the left
    return np.concatenate([colour_photo(), alpha[..., None]], -1)


def test_rgba_keeps_its_alpha_byte_for_byte(tmp_path, capsys, painted):
    rgba = rgba_photo()
    Image.fromarray(rgba).save(tmp_path / "in.png")
    hole = box_hole()
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", save_mask(tmp_path / "m.png", hole), "-o",
                        tmp_path / "out.png", *FAST)
    assert code == 0, err
    assert (painted[0][0] == rgba[..., :3]).all()
    out = Image.open(tmp_path / "out.png")
    pixels = np.asarray(out)
    assert out.mode == "RGBA" and (pixels[..., 3] == rgba[..., 3]).all()
    assert (pixels[~hole] == rgba[~hole]).all() and (pixels[hole][:, :3] == PAINT).all()


def test_mask_alpha_fills_the_transparent_pixels_and_makes_them_opaque(tmp_path, capsys, painted):
    rgba = rgba_photo()
    Image.fromarray(rgba).save(tmp_path / "in.png")
    hole = rgba[..., 3] < 128  # more than half transparent
    assert hole.any() and (rgba[..., 3] == 127).any() and (rgba[..., 3] == 128).any()  # both sides of the cut
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", "alpha", "-o", tmp_path / "out.png", *FAST)
    assert code == 0, err
    assert (painted[0][1] == hole).all()
    pixels = np.asarray(Image.open(tmp_path / "out.png"))
    assert (pixels[~hole] == rgba[~hole]).all()
    assert (pixels[hole][:, :3] == PAINT).all() and (pixels[hole][:, 3] == 255).all()


def test_mask_alpha_refusals(tmp_path, capsys, painted):
    Image.fromarray(colour_photo()).save(tmp_path / "rgb.png")
    opaque = rgba_photo()
    opaque[..., 3] = 200
    Image.fromarray(opaque).save(tmp_path / "opaque.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run_cli(capsys, tmp_path / "rgb.png", "--mask", "alpha", "-o", tmp_path / "o.png")
    expect_one_line_error(code, err, "has no alpha channel", tmp_path, before)
    code, err = run_cli(capsys, tmp_path / "opaque.png", "--mask", "alpha", "-o", tmp_path / "o.png")
    expect_one_line_error(code, err, "mask is empty", tmp_path, before)
    assert not painted


def test_transparency_is_never_dropped_silently(tmp_path, capsys, painted):
    rgba = rgba_photo()
    Image.fromarray(rgba).save(tmp_path / "in.png")
    mask = save_mask(tmp_path / "m.png", box_hole())
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", mask, "-o", tmp_path / "out.jpg")
    expect_one_line_error(code, err, "has transparent pixels and JPEG cannot keep them", tmp_path, before)
    assert not painted  # refused before any work
    # Opaque everywhere once filled (--mask alpha fills what was transparent): JPEG loses nothing.
    rgba[..., 3] = np.where(rgba[..., 3] < 128, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "in.png")
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", "alpha", "-o", tmp_path / "out.jpg", *FAST)
    assert code == 0, err
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_16_bit_greyscale_keeps_16_bits_outside_the_hole(tmp_path, capsys, painted):
    deep = gradient(np.uint16, 257) + 3  # not multiples of 257: 8 bits could not hold them
    Image.fromarray(deep).save(tmp_path / "in.png")
    assert Image.open(tmp_path / "in.png").mode == "I;16"
    hole = box_hole()
    mask = save_mask(tmp_path / "m.png", hole)
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", mask, "-o", tmp_path / "out.png", *FAST)
    assert code == 0, err
    assert (painted[0][0][..., 0] == (deep.astype(int) + 128) // 257).all()  # the fill works in 8 bits
    out = Image.open(tmp_path / "out.png")
    pixels = np.asarray(out).astype(np.uint16)
    assert out.mode == "I;16" and (pixels[~hole] == deep[~hole]).all() and (pixels[hole] == PAINT_LUMA * 257).all()
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", mask, "-o", tmp_path / "out.jpg")
    expect_one_line_error(code, err, "16-bit and JPEG would keep 8 bits", tmp_path, before)


def png_16_bit_rgb(rgb16):
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind,pattern", [("rgb16", "16-bit colour is not supported"),
                                          ("cmyk", "CMYK is not supported"),
                                          ("float", "floating-point images are not supported")])
def test_refused_kinds_say_why_in_one_line(tmp_path, capsys, painted, kind, pattern):
    if kind == "rgb16":
        (tmp_path / "in.png").write_bytes(png_16_bit_rgb(np.stack([gradient(np.uint16, 257)] * 3, -1)))
        name = "in.png"
    elif kind == "cmyk":
        Image.fromarray(np.concatenate([colour_photo(), gradient()[..., None]], -1), "CMYK").save(tmp_path / "in.jpg")
        name = "in.jpg"
    else:
        Image.fromarray(gradient(np.float32) / 255).save(tmp_path / "in.tif")
        name = "in.tif"
    save_mask(tmp_path / "m.png", box_hole())
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run_cli(capsys, tmp_path / name, "--mask", tmp_path / "m.png", "-o", tmp_path / "out.png")
    expect_one_line_error(code, err, pattern, tmp_path, before)
    assert not painted


def test_anti_aliased_mask_is_hole_from_half_bright(tmp_path, capsys, painted):
    Image.fromarray(colour_photo()).save(tmp_path / "in.png")
    soft = np.zeros((H, W), np.uint8)
    soft[6:14, 6:20] = 255
    soft[5, 6:20] = 127  # the anti-aliased rim: just under half is not hole...
    soft[14, 6:20] = 128  # ...half is
    soft[15, 6:20] = 3  # faint noise, as a JPEG-compressed mask has
    Image.fromarray(np.stack([soft] * 3, -1)).save(tmp_path / "soft.png")
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", tmp_path / "soft.png", "-o", tmp_path / "out.png",
                        *FAST)
    assert code == 0, err
    assert (painted[0][1] == (soft >= 128)).all()
    # A 0/1 mask (all too dark) says what to do instead of "empty".
    Image.fromarray((soft > 0).astype(np.uint8)).save(tmp_path / "ones.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", tmp_path / "ones.png", "-o", tmp_path / "o2.png")
    expect_one_line_error(code, err, "no pixel at half brightness or more (its brightest is 1", tmp_path, before)


def test_output_format_follows_the_extension_and_quality_applies(tmp_path, capsys, painted):
    Image.fromarray(colour_photo()).save(tmp_path / "in.png")
    mask = save_mask(tmp_path / "m.png", box_hole())
    for name, fmt in [("o.tif", "TIFF"), ("o.webp", "WEBP"), ("o.bmp", "BMP"), ("q95.jpg", "JPEG"),
                      ("q40.jpeg", "JPEG")]:
        quality = ["--quality", "40"] if name.startswith("q40") else []
        code, err = run_cli(capsys, tmp_path / "in.png", "--mask", mask, "-o", tmp_path / name, *quality, *FAST)
        assert code == 0, err
        assert Image.open(tmp_path / name).format == fmt
    for lossless in ("o.tif", "o.bmp"):  # every byte outside the hole kept
        out = np.asarray(Image.open(tmp_path / lossless))
        assert (out[~box_hole()] == colour_photo()[~box_hole()]).all()

    def luma_quantizer_sum(name):  # JPEG's quantisation steps: larger at lower quality
        return sum(Image.open(tmp_path / name).quantization[0])

    assert luma_quantizer_sum("q40.jpeg") > 4 * luma_quantizer_sum("q95.jpg")
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "in.png"), "--mask", str(mask), "-o", str(tmp_path / "x.jpg"), "--quality", "0"])
    assert "--quality: must be an integer from 1 to 100, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("mode,out_name", [("RGB", "out.jpg"), ("RGB", "out.png"), ("L", "out.png"),
                                           ("L", "out.tif")])
def test_icc_profile_is_kept(tmp_path, capsys, painted, mode, out_name):
    profile = ImageCms.createProfile("sRGB") if mode == "RGB" else ImageCms.createProfile("LAB")
    icc = ImageCms.ImageCmsProfile(profile).tobytes()
    photo = colour_photo() if mode == "RGB" else gradient()
    Image.fromarray(photo).save(tmp_path / "in.png", icc_profile=icc)
    code, err = run_cli(capsys, tmp_path / "in.png", "--mask", save_mask(tmp_path / "m.png", box_hole()), "-o",
                        tmp_path / out_name, *FAST)
    assert code == 0, err
    out = Image.open(tmp_path / out_name)
    assert out.mode == mode and out.info.get("icc_profile") == icc


def test_greyscale_real_fill(tmp_path, capsys):
    """The real fill on a greyscale photo: greyscale out, outside bytes identical, the hole filled."""
    from skimage import data

    grey = np.ascontiguousarray(data.camera()[200:296, 150:278])
    Image.fromarray(grey).save(tmp_path / "in.png")
    code, err = run_cli(capsys, tmp_path / "in.png", "--box", 50, 30, 30, 25, "-o", tmp_path / "out.png", *FAST)
    assert code == 0, err
    out = Image.open(tmp_path / "out.png")
    hole = np.zeros(grey.shape, bool)
    hole[30:55, 50:80] = True
    pixels = np.asarray(out)
    assert out.mode == "L" and (pixels[~hole] == grey[~hole]).all() and (pixels[hole] != grey[hole]).any()
    assert abs(pixels[hole].mean() - grey[~hole].mean()) < 60  # filled from the photo, not black or white
