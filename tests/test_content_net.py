"""The content network: it learns, its checkpoints round-trip and resume exactly, bad files are refused
clearly, the fill uses it, and the training command's errors are one line."""
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import npsynth_ext as nx
from npsynth_ext import train_content as tc
from npsynth_ext.content_net import ContentNet, ContentNetConfig, Discriminator, load_content_net, save_checkpoint
from npsynth_ext.first_guess import network_prior

SMALL = ContentNetConfig(size=32, width=8, code=64, disc_width=8)
TRAIN_PHOTOS = ["camera", "coins", "grass", "horse", "moon", "immunohistochemistry", "clock", "colorwheel"]


def photo(name, side):
    """A scikit-image photo as [3, H, W] uint8, shrunk so its shorter side is 4 * side (the crops then
    see about the context a fill's coarsest scale does)."""
    img = Image.fromarray(getattr(data, name)()).convert("RGB")
    scale = 4 * side / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def photos():
    return [photo(n, SMALL.size) for n in TRAIN_PHOTOS]


def test_shapes_and_sizes():
    for config in (SMALL, ContentNetConfig()):
        net, disc = ContentNet(config), Discriminator(config)
        x = torch.rand(2, 3, config.size, config.size)
        hole = torch.zeros(2, config.size, config.size, dtype=torch.bool)
        hole[:, 4:20, 6:18] = True
        out = net(x, hole)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
        assert disc(x, hole).shape == (2,)
        assert torch.equal(net.complete(x, hole)[:, :, ~hole[0]], x[:, :, ~hole[0]])
    with pytest.raises(ValueError, match="power of two"):
        ContentNetConfig(size=100)


def test_untrained_network_predicts_the_mean_colour_of_the_context():
    x = torch.rand(1, 3, 32, 32)
    hole = torch.zeros(1, 32, 32, dtype=torch.bool)
    hole[0, 8:24, 8:24] = True
    out = ContentNet(SMALL).eval()(x, hole)
    mean = x[:, :, ~hole[0]].mean(-1)
    torch.testing.assert_close(out[:, :, 16, 16], mean.clamp(0.01, 0.99), rtol=1e-5, atol=1e-5)


def test_short_training_beats_the_mean_colour_fill_on_held_out_crops(photos):
    trainer = tc.Trainer(SMALL, 1e-3, 0.999, 0.001, "cpu", seed=0)
    for _ in range(100):
        trainer.train_step(photos, 16)
    g = torch.Generator().manual_seed(12345)  # crops and holes the training never drew
    real = tc.random_crops(photos, 64, SMALL.size, g)
    holes = tc.random_holes(64, SMALL.size, g)
    known = (~holes[:, None]).float()
    mean = (real * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
    with torch.no_grad():
        net_loss = tc.hole_l2(trainer.net.eval()(real, holes), real, holes).item()
    mean_loss = tc.hole_l2(mean.expand_as(real), real, holes).item()
    assert net_loss < 0.8 * mean_loss, (net_loss, mean_loss)


def test_checkpoint_round_trips_exactly(tmp_path, photos):
    trainer = tc.Trainer(SMALL, 1e-3, 0.999, 0.001, "cpu", seed=1)
    for _ in range(2):
        trainer.train_step(photos, 4)
    save_checkpoint(tmp_path / "m.pt", trainer.state())
    loaded = load_content_net(str(tmp_path / "m.pt"))
    assert loaded.config == SMALL and not loaded.training
    for (name, a), (_, b) in zip(trainer.net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x, hole = torch.rand(2, 3, 32, 32), torch.rand(2, 32, 32) > 0.6
    assert torch.equal(trainer.net.eval()(x, hole), loaded(x, hole))


def test_resume_continues_exactly(tmp_path):
    """4 steps in one run == 2 steps, a checkpoint, and 2 more steps resumed from it (the command)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in TRAIN_PHOTOS[:3]:
        Image.fromarray(photo(name, 32).permute(1, 2, 0).numpy()).save(folder / f"{name}.png")
    common = [str(folder), "--size", "32", "--width", "8", "--code", "64", "--disc-width", "8", "--batch-size", "4",
              "--quiet"]
    assert tc.main([*common, "-o", str(tmp_path / "straight.pt"), "--steps", "4"]) == 0
    assert tc.main([*common, "-o", str(tmp_path / "resumed.pt"), "--steps", "2"]) == 0
    assert tc.main([*common, "-o", str(tmp_path / "resumed.pt"), "--steps", "4", "--resume"]) == 0
    a = torch.load(tmp_path / "straight.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)


def test_bad_checkpoints_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_content_net(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="not a readable content network checkpoint"):
        load_content_net(str(tmp_path / "junk.pt"))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an npsynth_ext content network checkpoint"):
        load_content_net(str(tmp_path / "other.pt"))
    save_checkpoint(tmp_path / "broken.pt", {"config": {"size": 32}, "generator": {"nope": torch.zeros(1)}})
    with pytest.raises(ValueError, match="does not load"):
        load_content_net(str(tmp_path / "broken.pt"))
    state = torch.load(tmp_path / "broken.pt", weights_only=True)
    state["version"] = 99
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="version 99"):
        load_content_net(str(tmp_path / "future.pt"))


def test_fill_uses_the_network_prior(tmp_path):
    net = ContentNet(SMALL)
    with torch.no_grad():
        net.decoder[-1].bias.fill_(3.0)  # an easily recognised prediction: near white everywhere
    save_checkpoint(tmp_path / "white.pt", {"config": asdict(SMALL), "generator": net.state_dict()})
    img = np.ascontiguousarray(data.coffee()[100:228, 200:328])
    mask = np.zeros(img.shape[:2], bool)
    mask[40:90, 30:100] = True
    white = load_content_net(str(tmp_path / "white.pt"))
    prior_only = nx.fill(img, mask, content=white, iters=(0, 0, 0), progress=False)
    classical = nx.fill(img, mask, iters=(0, 0, 0), progress=False)
    assert prior_only[mask].mean() > 200 and classical[mask].mean() < 200
    out = nx.fill(img, mask, content=white, iters=(3, 1, 1), progress=False)
    assert (out[~mask] == img[~mask]).all()


def test_network_prior_resizes_to_the_network_side():
    net = ContentNet(SMALL)
    rgb = torch.rand(3, 64, 64)
    hole = torch.zeros(64, 64, dtype=torch.bool)
    hole[20:40, 10:50] = True
    out = network_prior(net)(rgb, hole, torch.ones(64, 64, dtype=torch.bool))
    assert out.shape == rgb.shape and torch.equal(out[:, ~hole], rgb[:, ~hole])


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "image folder not found"),
    (lambda d: d.mkdir(), "it is empty"),
    (lambda d: (d.mkdir(), (d / "a.png").write_text("not an image")), "none of its 1 files"),
])
def test_training_command_errors_are_one_line(tmp_path, capsys, setup, message):
    folder = tmp_path / "photos"
    setup(folder)
    code = tc.main([str(folder), "-o", str(tmp_path / "m.pt"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "m.pt").exists()


def test_unwritable_checkpoint_path_fails_before_training(tmp_path, capsys, monkeypatch):
    """-o naming a folder is refused at once, not at the first checkpoint after minutes of training."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo("camera", 32).permute(1, 2, 0).numpy()).save(folder / "camera.png")
    monkeypatch.setattr(tc.Trainer, "train_step", lambda *a: pytest.fail("trained before checking the output"))
    code = tc.main([str(folder), "-o", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder" in err and err.count("\n") == 1

