"""python -m npsynth_ext.fill: error paths (one line, exit 2, nothing written) and a real run."""
import importlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from npsynth_ext import fill_command as cli

FAST = ["--iters", "3", "1", "1", "--quiet"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    mask = np.zeros((70, 90), np.uint8)
    mask[20:40, 30:60] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.fromarray(mask[:-1]).save(tmp_path / "small_mask.png")
    Image.fromarray(mask * 0).save(tmp_path / "empty_mask.png")
    (tmp_path / "not_an_image.png").write_text("hello")
    return tmp_path, img, mask > 0


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("argv,message", [
    (["{d}/missing.png", "--box", "1", "1", "5", "5", "-o", "{d}/o.png"], "image not found"),
    (["{d}/not_an_image.png", "--box", "1", "1", "5", "5", "-o", "{d}/o.png"], "cannot read image"),
    (["{d}/in.png", "--mask", "{d}/small_mask.png", "-o", "{d}/o.png"], "mask .* is 90x69 but the image is 90x70"),
    (["{d}/in.png", "--mask", "{d}/empty_mask.png", "-o", "{d}/o.png"], "mask is empty"),
    (["{d}/in.png", "--mask", "{d}/nope.png", "-o", "{d}/o.png"], "mask not found"),
    (["{d}/in.png", "--mask", "{d}/not_an_image.png", "-o", "{d}/o.png"], "cannot read mask"),
    (["{d}/in.png", "--box", "80", "10", "20", "5", "-o", "{d}/o.png"], "does not fit"),
    (["{d}/in.png", "--box", "0", "0", "90", "70", "-o", "{d}/o.png"], "whole image"),
    (["{d}/in.png", "--box", "1", "1", "5", "5", "-o", "{d}/no/such/dir/o.png"], "output folder does not exist"),
    (["{d}/in.png", "--box", "1", "1", "5", "5", "-o", "{d}/o.xyz"], "unknown image extension"),
    (["{d}/in.png", "--box", "1", "1", "5", "5"], "give the output path"),
    (["{d}/in.png", "-o", "{d}/o.png"], "give the hole"),
    (["--demo", "{d}/in.png"], "--demo takes no IMAGE"),
    (["{d}/in.png", "--box", "1", "1", "5", "5", "-o", "{d}/o.png", "--max-frame", "100"], "max_frame must be"),
    (["{d}/in.png", "--box", "1", "1", "5", "5", "-o", "{d}/o.png", "--iters", "1", "-1", "1"], "iters must be"),
    (["{d}/in.png", "--box", "1", "1", "5", "5", "-o", "{d}/o.png", "--vgg-weights", "{d}/nope.pth"],
     "VGG-19 weights file not found"),
    pytest.param(["{d}/in.png", "--box", "1", "1", "5", "5", "-o", "{d}/o.png", "--device", "cuda"],
                 "no CUDA GPU is available", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")),
    ([], "give an IMAGE"),
])
def test_errors_are_one_line_exit_2_and_write_nothing(files, capsys, argv, message):
    d, _, _ = files
    before = sorted(p.name for p in d.iterdir())
    code, err = run_cli(capsys, *[a.format(d=d) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npsynth_ext.fill: error:"), err
    assert re.search(message, lines[0]), lines[0]
    assert sorted(p.name for p in d.iterdir()) == before, "a failed run left files behind"


def test_module_entry_point_reports_errors_without_traceback(tmp_path):
    # The package under test, installed or not (a checkout built in place).
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))}
    proc = subprocess.run([sys.executable, "-m", "npsynth_ext.fill", str(tmp_path / "missing.png"), "--box", "0",
                           "0", "2", "2", "-o", str(tmp_path / "o.png")], capture_output=True, text=True, cwd=tmp_path,
                          env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "image not found" in proc.stderr


def test_fill_with_mask_writes_the_result(files, capsys):
    d, img, hole = files
    code, err = run_cli(capsys, d / "in.png", "--mask", d / "mask.png", "-o", d / "out.png", "--save-steps",
                        d / "steps", *FAST)
    assert code == 0, err
    out = np.asarray(Image.open(d / "out.png"))
    assert out.shape == img.shape and (out[~hole] == img[~hole]).all() and (out[hole] != img[hole]).any()
    assert sorted(str(p.relative_to(d / "steps")) for p in (d / "steps").rglob("*.png")) == [
        "frame1/scale1_128.png", "frame1/scale1_128_optimised.png", "frame1/scale1_128_start.png"]
    assert not [p for p in d.iterdir() if ".tmp" in p.name]


def test_box_and_jpeg_output(files, capsys):
    d, img, _ = files
    code, err = run_cli(capsys, d / "in.png", "--box", 30, 20, 30, 20, "-o", d / "out.jpg", *FAST)
    assert code == 0, err
    assert Image.open(d / "out.jpg").format == "JPEG"


def test_search_option_reaches_the_pipeline(files, capsys, monkeypatch):
    from npsynth_ext import pipeline

    seen = []
    real = pipeline.fill_u8
    monkeypatch.setattr(pipeline, "fill_u8", lambda image, hole, opts, timings, net=None: seen.append(opts.search) or
                        real(image, hole, opts, timings, net=net))
    d, _, _ = files
    code, err = run_cli(capsys, d / "in.png", "--mask", d / "mask.png", "-o", d / "out.png", "--search", "exact", *FAST)
    assert code == 0, err
    assert seen == ["exact"]
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, d / "in.png", "--mask", d / "mask.png", "-o", d / "o2.png", "--search", "kd", *FAST)
    assert exit_.value.code == 2 and "invalid choice: 'kd'" in capsys.readouterr().err


def test_demo_runs(tmp_path, capsys):
    code, err = run_cli(capsys, "--demo", "-o", tmp_path / "demo.png", "--iters", "1", "0", "0", "--quiet")
    assert code == 0, err
    demo = np.asarray(Image.open(cli.DEMO_IMAGE).convert("RGB"))
    out = np.asarray(Image.open(tmp_path / "demo.png"))
    hole = np.asarray(Image.open(cli.DEMO_MASK)) > 0
    assert out.shape == demo.shape == (512, 512, 3) and hole.sum() == 256 * 256
    assert (out[~hole] == demo[~hole]).all()


def test_failed_write_leaves_no_partial_file(files, capsys, monkeypatch):
    d, _, _ = files

    real_save = Image.Image.save

    def broken_save(self, fp, format=None, **kw):
        if not isinstance(fp, (str, os.PathLike)):  # the in-memory check that the format takes the image
            return real_save(self, fp, format, **kw)
        with open(fp, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    code, err = run_cli(capsys, d / "in.png", "--box", 30, 20, 30, 20, "-o", d / "out.png", *FAST)
    assert code == 2 and "disk full" in err
    assert not (d / "out.png").exists() and not [p for p in d.iterdir() if ".tmp" in p.name]


def test_npsynth_ext_fill_is_always_the_function(files):
    """The command line's module (fill_command, imported above) leaves npsynth_ext.fill the fill() function;
    the module that `python -m npsynth_ext.fill` runs refuses to be imported, which would rebind it."""
    import npsynth_ext
    from npsynth_ext.pipeline import fill

    _, img, hole = files
    assert npsynth_ext.fill is fill
    with pytest.raises(ImportError, match="npsynth_ext.fill is the fill"):
        importlib.import_module("npsynth_ext.fill")
    assert npsynth_ext.fill is fill
    out = npsynth_ext.fill(img, hole, iters=(1, 0, 0), progress=False)
    assert out.shape == img.shape and (out[~hole] == img[~hole]).all()


def test_prior_pixel_rounds_and_blend_reach_the_pipeline(files, capsys, monkeypatch):
    from npsynth_ext import pipeline

    seen = []
    real = pipeline.fill_u8
    monkeypatch.setattr(pipeline, "fill_u8", lambda image, hole, opts, timings, net=None: seen.append(
        (opts.content, opts.pixel_rounds, opts.pixel_blend)) or real(image, hole, opts, timings, net=net))
    d, _, _ = files
    code, err = run_cli(capsys, d / "in.png", "--mask", d / "mask.png", "-o", d / "out.png", "--prior", "classical",
                        "--pixel-rounds", "0", *FAST)
    assert code == 0, err
    code, err = run_cli(capsys, d / "in.png", "--mask", d / "mask.png", "-o", d / "o1.png", "--no-blend", *FAST)
    assert code == 0, err
    assert seen == [("classical", 0, True), ("patches", 3, False)]
    code, err = run_cli(capsys, d / "in.png", "--mask", d / "mask.png", "-o", d / "o2.png", "--pixel-rounds", "-2",
                        *FAST)
    assert code == 2 and "pixel_rounds must be >= 0" in err and not (d / "o2.png").exists()


def test_the_cli_says_when_max_frame_downscales(tmp_path, capsys):
    """A 200x200 hole in a 300x400 photo has a 416 px frame: --max-frame 256 works it at 256 and says so
    on stderr (not with --quiet); without the cap nothing is said."""
    from skimage import data

    Image.fromarray(data.coffee()[:300, :400]).save(tmp_path / "in.png")
    box = ["--box", 100, 50, 200, 200]
    code, err = run_cli(capsys, tmp_path / "in.png", *box, "-o", tmp_path / "a.png", "--iters", 1, 0, 0,
                        "--max-frame", 256)
    assert code == 0, err
    assert "frame 1 of 1 is 416 px, worked at 256 px (--max-frame 256)" in err
    code, err = run_cli(capsys, tmp_path / "in.png", *box, "-o", tmp_path / "b.png", "--iters", 1, 0, 0)
    assert code == 0 and "--max-frame" not in err
    code, err = run_cli(capsys, tmp_path / "in.png", *box, "-o", tmp_path / "c.png", "--max-frame", 256, *FAST)
    assert code == 0 and "--max-frame" not in err
