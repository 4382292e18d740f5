"""A decompression bomb (a small file whose header claims hundreds of millions of pixels) is refused before it
is decoded: by images.open_image and read_photo, and by the fill CLI with its one-line error."""

import numpy as np
import pytest
from PIL import Image
from serve_helpers import bomb_png

from npsynth_ext import fill_command as cli
from npsynth_ext import images, masks


def test_read_photo_refuses_a_bomb(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(20000, 20000))
    with pytest.raises(ValueError, match=r"decompression bomb"):
        images.read_photo(path)
    # Our limit holds where a program has lifted Pillow's own.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ValueError, match=r"decompression bomb: its header claims 20000x20000 pixels"):
        images.read_photo(path)


def test_open_image_takes_a_large_photo_under_the_limit(tmp_path):
    path = tmp_path / "wide.png"
    path.write_bytes(bomb_png(12000, 7000))  # 84 million pixels: under the limit, so only the header is read
    with images.open_image(path) as img:
        assert img.size == (12000, 7000)


def test_cli_refuses_a_bomb_in_one_line(tmp_path, capsys):
    (tmp_path / "bomb.png").write_bytes(bomb_png(20000, 20000))
    code = cli.main([str(tmp_path / "bomb.png"), "--box", "1", "1", "5", "5", "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "npsynth_ext.fill: error:" in err and "decompression bomb" in err, err
    assert not (tmp_path / "out.png").exists()


def test_a_bomb_as_the_mask_is_refused_by_the_one_mask_reader_and_the_cli(tmp_path, capsys):
    (tmp_path / "bomb.png").write_bytes(bomb_png(20000, 20000))
    with pytest.raises(masks.MaskError, match=r"mask .*bomb.png: refused as a possible decompression bomb"):
        masks.read_mask(str(tmp_path / "bomb.png"), (5, 7))
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "p.png")
    code = cli.main([str(tmp_path / "p.png"), "--mask", str(tmp_path / "bomb.png"), "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "decompression bomb" in err, err
    assert not (tmp_path / "out.png").exists()


def test_a_normal_photo_still_reads(tmp_path):
    photo = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    Image.fromarray(photo).save(tmp_path / "p.png")
    assert (images.read_photo(tmp_path / "p.png").rgb == photo).all()
