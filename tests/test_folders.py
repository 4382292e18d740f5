"""python -m npsynth_ext.fill PHOTOS_DIR --mask-dir MASKS_DIR -o OUT_DIR: one corrupt file among good ones,
photos without a mask, re-runs, --overwrite, the summary line and the exit codes."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from npsynth_ext import fill_command as cli
from npsynth_ext import pipeline, vgg

FAST = ["--iters", "2", "1", "1"]
PAINT = np.array([10, 220, 30], np.uint8)


def photo(seed, h=40, w=56):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def hole(seed, h=40, w=56):
    m = np.zeros((h, w), bool)
    m[8 + seed:20 + seed, 10:30] = True
    return m


@pytest.fixture
def batch(tmp_path):
    """photos/: a.png and b.jpg (good, with masks), c.png (corrupt, with a mask), d.png (no mask),
    E.png (its mask is e.png: stems match case-sensitively), notes.txt (not an image); out/ not made."""
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    Image.fromarray(photo(0)).save(photos / "a.png")
    Image.fromarray(photo(1)).save(photos / "b.jpg", quality=95)
    (photos / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then garbage
    Image.fromarray(photo(3)).save(photos / "d.png")
    Image.fromarray(photo(4)).save(photos / "E.png")
    (photos / "notes.txt").write_text("not a photo")
    for stem, seed in [("a", 0), ("b", 1), ("c", 2), ("e", 4)]:
        Image.fromarray(hole(seed).astype(np.uint8) * 255).save(masks / f"{stem}.png")
    return photos, masks, tmp_path / "out"


def run_folder(capsys, batch, *extra):
    photos, masks, out = batch
    code = cli.main([str(photos), "--mask-dir", str(masks), "-o", str(out), *FAST, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def failures(err):
    """{photo name: reason} from the batch's failure lines."""
    lines = [line.split(": ", 2)[1:] for line in err.splitlines() if line.startswith("npsynth_ext.fill: ")]
    return {name: reason for name, reason in lines}


def test_one_corrupt_file_among_good_ones(batch, capsys):
    """The real fill over the batch: the good photos are filled, the bad ones reported and skipped."""
    photos, _, out = batch
    code, stdout, err = run_folder(capsys, batch, "--quiet")
    assert code == 1
    assert stdout.strip().splitlines()[-1] == "2 filled, 0 skipped (exists), 3 failed"
    failed = failures(err)
    assert sorted(failed) == ["E.png", "c.png", "d.png"], err
    assert "cannot read image" in failed["c.png"]
    assert "no mask named d.*" in failed["d.png"] and "no mask named E.*" in failed["E.png"]
    assert sorted(os.listdir(out)) == ["a.png", "b.jpg"]  # nothing half-written, no temporary files
    a = np.asarray(Image.open(out / "a.png"))
    assert (a[~hole(0)] == photo(0)[~hole(0)]).all() and (a[hole(0)] != photo(0)[hole(0)]).any()
    assert Image.open(out / "b.jpg").format == "JPEG"


@pytest.fixture
def painted(monkeypatch):
    """The fill replaced by a paint of PAINT over the hole, and the VGG loader by a counter: returns
    (photos painted, in order; VGG loads; (texture net, progress) of each fill's options)."""
    painted_images, loads, fill_options = [], [], []

    def paint(image, hole, opts, timings=None, net=None, on_progress=None):
        painted_images.append(image.copy())
        fill_options.append((net, opts.progress))
        out = image.copy()
        out[hole] = PAINT
        return out

    def load_texture_net(weights=None, device="cpu"):
        loads.append(weights)
        return object()

    monkeypatch.setattr(pipeline, "fill_u8", paint)
    monkeypatch.setattr(vgg, "load_texture_net", load_texture_net)
    monkeypatch.setattr(pipeline, "load_texture_net", load_texture_net)
    return painted_images, loads, fill_options


def test_vgg_loads_once_and_one_bar_counts_the_photos(batch, capsys, painted):
    painted_images, loads, fill_options = painted
    code, _, err = run_folder(capsys, batch)
    assert code == 1 and len(loads) == 1 and len(painted_images) == 2
    (net_a, progress_a), (net_b, progress_b) = fill_options
    assert net_a is net_b is not None  # both fills reuse the one net
    assert "photos: 100%" in err and not progress_a and not progress_b  # the batch's bar, no per-scale bars


def test_rerun_skips_what_exists_and_overwrite_redoes_it(batch, capsys, painted):
    _, masks, out = batch
    run_folder(capsys, batch)
    (masks / "d.png").write_bytes((masks / "a.png").read_bytes())  # d gets a mask for the re-run
    written = (out / "a.png").stat().st_mtime_ns
    code, stdout, _ = run_folder(capsys, batch)
    assert code == 1 and stdout.splitlines()[-1] == "1 filled, 2 skipped (exists), 2 failed"
    assert (out / "a.png").stat().st_mtime_ns == written and (out / "d.png").exists()
    code, stdout, _ = run_folder(capsys, batch, "--overwrite")
    assert code == 1 and stdout.splitlines()[-1] == "3 filled, 0 skipped (exists), 2 failed"
    assert (out / "a.png").stat().st_mtime_ns != written


def test_all_good_exits_0(batch, capsys, painted):
    photos, _, out = batch
    for name in ("c.png", "d.png", "E.png"):
        (photos / name).unlink()
    code, stdout, err = run_folder(capsys, batch, "--quiet")
    assert code == 0 and stdout.strip() == "2 filled, 0 skipped (exists), 0 failed" and not err
    a = np.asarray(Image.open(out / "a.png"))
    assert (a[hole(0)] == PAINT).all() and (a[~hole(0)] == photo(0)[~hole(0)]).all()


def test_a_failure_inside_the_fill_or_the_write_stays_that_photos(batch, capsys, painted, monkeypatch):
    """An unexpected error in one fill, and a write that fails half-way, are reported; the batch goes
    on and nothing half-written is left."""
    photos, _, out = batch
    for name in ("c.png", "d.png", "E.png"):
        (photos / name).unlink()
    Image.fromarray(photo(5)).save(photos / "f.png")
    Image.fromarray(hole(5).astype(np.uint8) * 255).save(batch[1] / "f.png")
    paint = pipeline.fill_u8

    def fill_or_break(image, hole, opts, timings=None, net=None):
        if (image == photo(0)).all():
            raise RuntimeError("out of memory")
        return paint(image, hole, opts, timings, net=net)

    real_save = Image.Image.save

    def save_or_break(self, fp, format=None, **kw):
        if isinstance(fp, str) and "b.jpg" in fp:
            with open(fp, "wb") as f:
                f.write(b"partial")
            raise OSError("disk full")
        return real_save(self, fp, format, **kw)

    monkeypatch.setattr(pipeline, "fill_u8", fill_or_break)
    monkeypatch.setattr(Image.Image, "save", save_or_break)
    code, stdout, err = run_folder(capsys, batch, "--quiet")
    assert code == 1 and stdout.strip() == "1 filled, 0 skipped (exists), 2 failed"
    assert failures(err) == {"a.png": "RuntimeError: out of memory", "b.jpg": "disk full"}
    assert sorted(os.listdir(out)) == ["f.png"]


def test_several_masks_for_one_photo_is_that_photos_failure(batch, capsys, painted):
    _, masks, _ = batch
    Image.fromarray(hole(0).astype(np.uint8) * 255).save(masks / "a.jpg")
    code, _, err = run_folder(capsys, batch, "--quiet")
    assert code == 1 and "several masks named a.* in" in failures(err)["a.png"] and "a.jpg, a.png" in err


def test_mask_alpha_and_box_in_folder_mode(tmp_path, capsys, painted):
    photos = tmp_path / "photos"
    photos.mkdir()
    rgba = np.concatenate([photo(0), np.full((40, 56, 1), 255, np.uint8)], -1)
    rgba[hole(0), 3] = 0
    Image.fromarray(rgba).save(photos / "a.png")
    assert cli.main([str(photos), "--mask", "alpha", "-o", str(tmp_path / "alpha"), "--quiet"]) == 0
    a = np.asarray(Image.open(tmp_path / "alpha" / "a.png"))
    assert (a[hole(0)] == [*PAINT, 255]).all() and (a[~hole(0)] == rgba[~hole(0)]).all()
    assert cli.main([str(photos), "--box", "1", "2", "3", "4", "-o", str(tmp_path / "box"), "--quiet"]) == 0
    b = np.asarray(Image.open(tmp_path / "box" / "a.png"))
    assert (b[2:6, 1:4, :3] == PAINT).all() and (b[2:6, 1:4, 3] == 255).all() and (b[0, 0] == rgba[0, 0]).all()


@pytest.mark.parametrize("argv,message", [
    (["{d}/nope", "--mask-dir", "{d}/masks", "-o", "{d}/out"], "folder not found: .*nope"),
    (["{d}/photos", "--mask-dir", "{d}/nope", "-o", "{d}/out"], "folder not found: .*nope"),
    (["{d}/photos", "--mask-dir", "{d}/masks", "-o", "{d}/photos"], "is an input folder"),
    (["{d}/photos", "--mask-dir", "{d}/masks", "-o", "{d}/masks"], "is an input folder"),
    (["{d}/photos", "--mask-dir", "{d}/masks", "-o", "{d}/photos/a.png"], "is a file, not a folder"),
    (["{d}/photos", "--mask-dir", "{d}/masks"], "give the output folder"),
    (["{d}/photos", "--mask", "{d}/masks/a.png", "-o", "{d}/out"], "--mask takes only 'alpha'"),
    (["{d}/photos", "-o", "{d}/out"], "folder mode takes the holes from"),
    (["{d}/empty", "--mask-dir", "{d}/masks", "-o", "{d}/out"], "no image files in"),
    (["{d}/photos/a.png", "--mask-dir", "{d}/masks", "-o", "{d}/out.png"], "a.png is a file, not a folder"),
])
def test_folder_errors_are_one_line_exit_2(batch, capsys, painted, argv, message):
    d = batch[0].parent
    (d / "empty").mkdir()
    before = sorted(str(p) for p in d.rglob("*"))
    code = cli.main([a.format(d=d) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("npsynth_ext.fill: error:"), err
    assert re.search(message, err[0]), err[0]
    assert sorted(str(p) for p in d.rglob("*")) == before
