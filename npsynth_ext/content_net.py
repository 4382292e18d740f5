"""The paper's content network: a Context Encoder with a fully-connected bottleneck and ELU activations,
trained by the user with `python -m npsynth_ext.train_content`, and its checkpoint format. Its fill of the
hole can be the first guess (FillOptions.content = load_content_net(path); first_guess.network_prior).
"""
import os
from dataclasses import dataclass

import torch
from torch import nn

from .images import write_atomically


@dataclass(frozen=True)
class ContentNetConfig:
    size: int = 128  # side of the input and output image (the paper: 128, with a 64x64 hole)
    width: int = 16  # channels of the first encoder layer; each stride-2 layer doubles them, up to 8x
    code: int = 256  # size of the fully-connected bottleneck
    disc_width: int = 16  # channels of the discriminator's first layer

    def __post_init__(self):
        if self.size < 32 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two >= 32, got {self.size}")
        if min(self.width, self.code, self.disc_width) < 1:
            raise ValueError("width, code and disc_width must be positive")


def _down(cin, cout, norm=True):
    """A stride-2 4x4 convolution (halves the side), batch norm, ELU."""
    layers = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm)]
    return nn.Sequential(*layers, *([nn.BatchNorm2d(cout)] if norm else []), nn.ELU())


def _up(cin, cout):
    """A stride-2 4x4 transposed convolution (doubles the side), batch norm, ELU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ELU())


def _widths(first, size):
    """Channels after each stride-2 layer that takes a size x size input down to a 4x4 map: `first`,
    doubling each layer up to 8 x first."""
    steps = size.bit_length() - 3  # size / 2**steps == 4
    return [first * min(2**i, 8) for i in range(steps)]


def _encoder(widths):
    """Image and hole mask (4 channels) down to a 4x4 map of widths[-1] channels; no batch norm on the
    first layer (as in the Context Encoder and DCGAN)."""
    return nn.Sequential(*[_down(cin, cout, norm=i > 0) for i, (cin, cout) in enumerate(zip([4] + widths, widths))])


class ContentNet(nn.Module):
    """Context Encoder with the paper's two changes: a standard fully-connected bottleneck and ELU
    activations throughout. Input: the image with the hole filled with the known pixels' mean colour plus
    the hole mask (4 channels, config.size square); output: the whole image (0..1), of which the hole is
    used."""

    def __init__(self, config=ContentNetConfig()):
        super().__init__()
        self.config = config
        widths = _widths(config.width, config.size)
        self.encoder = _encoder(widths)
        flat = widths[-1] * 16
        self.bottleneck = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.code), nn.ELU(),
                                        nn.Linear(config.code, flat), nn.ELU())
        ups = widths[::-1]
        self.decoder = nn.Sequential(*[_up(cin, cout) for cin, cout in zip(ups, ups[1:])],
                                     nn.ConvTranspose2d(ups[-1], 3, 4, stride=2, padding=1))
        nn.init.zeros_(self.decoder[-1].weight)  # start from the mean colour exactly (see forward)
        nn.init.zeros_(self.decoder[-1].bias)

    def forward(self, rgb, hole):
        """rgb [B, 3, S, S] in 0..1, hole [B, S, S] bool -> the predicted image [B, 3, S, S].

        The decoder's output is a change (in logits) to the mean colour of the known pixels: an untrained
        network already predicts that mean, the baseline a content network must beat, and training only
        adds what the context says (predicting the image from scratch stays worse than the mean colour for
        hundreds of steps: docs/content_network.md)."""
        m = hole[:, None].to(rgb.dtype)
        known = 1 - m
        mean = (rgb * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)
        x = torch.cat([rgb * known + mean * m, m], 1)
        code = self.bottleneck(self.encoder(x))
        change = self.decoder(code.view(x.shape[0], -1, 4, 4))
        return torch.sigmoid(torch.logit(mean.clamp(0.01, 0.99)) + change)

    def complete(self, rgb, hole):
        """The input with its hole replaced by the prediction."""
        return torch.where(hole[:, None], self(rgb, hole), rgb)


class Discriminator(nn.Module):
    """A small convolutional critic of completed images: the image and its hole mask in, one logit
    (real vs. completed) per image out."""

    def __init__(self, config=ContentNetConfig()):
        super().__init__()
        widths = _widths(config.disc_width, config.size)
        self.body = _encoder(widths)
        self.head = nn.Conv2d(widths[-1], 1, 4)  # the 4x4 map -> one logit

    def forward(self, rgb, hole):
        return self.head(self.body(torch.cat([rgb, hole[:, None].to(rgb.dtype)], 1))).flatten()


CHECKPOINT_FORMAT = "npsynth_ext.content_network"
CHECKPOINT_VERSION = 1


def save_checkpoint(path, state):
    """Write a checkpoint dict atomically (temp file + rename), tagged with its format and version."""
    state = dict(state, format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def read_checkpoint(path):
    """The checkpoint dict at `path`, checked: a readable file of our format and a version we know."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"content network checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torch file that is not ours, a truncated file, random bytes, ...
        raise ValueError(f"{path} is not a readable content network checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an npsynth_ext content network checkpoint "
                         "(make one with python -m npsynth_ext.train_content)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {state.get('version')}; this npsynth_ext reads version "
                         f"{CHECKPOINT_VERSION}")
    return state


def load_content_net(path, device="cpu"):
    """The trained content network stored at `path` (by train_content), in eval mode."""
    state = read_checkpoint(path)
    try:
        net = ContentNet(ContentNetConfig(**state["config"]))  # the checkpoint says its own shape
        net.load_state_dict(state["generator"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{path}: the checkpoint's network does not load ({exc})") from None
    return net.to(device).eval()
