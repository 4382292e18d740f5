"""Command line: train the content network (the content prior of `fill --content-weights`) on your photos.

    python -m npsynth_ext.train_content IMAGES_DIR -o model.pt [--steps N] [--time-budget MIN] [options]

Every image file Pillow reads in IMAGES_DIR (not its sub-folders) is used. Each step draws a batch of
random square crops (random size, resized to the network's side, randomly flipped) with random holes,
half of them boxes and half irregular blobs, and trains the network to predict the hole: a reconstruction
L2 loss on the hole plus an adversarial loss from a small discriminator of completed images, weighted
0.999 / 0.001 by default as in the Context Encoder. Adam for both. A checkpoint (network, discriminator,
optimisers, step and random state, the network's configuration and a format version) is written
atomically every --checkpoint-every steps and at the end, so an interrupted run loses little and
`--resume` continues it exactly. A fixed --seed gives the same network on the same machine.
"""
import argparse
import glob
import math
import os
import sys
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from .cli import check_writable, run_command
from .content_net import ContentNet, ContentNetConfig, Discriminator, read_checkpoint, save_checkpoint


class TrainError(Exception):
    """A problem with the command line's input, reported as one line."""


def read_photos(folder, side):
    """Every readable image in `folder` as a [3, H, W] uint8 tensor, shrunk so its shorter side is at most
    4 * side (crops are at least `side`: larger images would only cost memory) and grown to at least
    `side`. -> (photos, names of the files that could not be read)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isdir(folder):
        raise TrainError(f"image folder not found: {folder}")
    files = sorted(p for p in glob.glob(os.path.join(folder, "*")) if os.path.isfile(p))
    photos, unreadable = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                scale = min(4 * side / min(img.size), 1) if min(img.size) >= side else side / min(img.size)
                if scale != 1:
                    img = img.resize((max(side, round(img.width * scale)), max(side, round(img.height * scale))),
                                     Image.BICUBIC)
                photos.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous())
        except (UnidentifiedImageError, OSError, ValueError):
            unreadable.append(os.path.basename(path))
    if not photos:
        what = f"none of its {len(files)} files is an image Pillow can read" if files else "it is empty"
        raise TrainError(f"no training images in {folder}: {what}")
    return photos, unreadable


def random_holes(n, side, gen):
    """[n, side, side] bool holes: boxes of a quarter to five eighths of the side, or irregular blobs
    (smoothed noise, thresholded) of similar extent, anywhere in the crop."""
    holes = torch.zeros(n, side, side, dtype=torch.bool)
    for i in range(n):
        h, w = (int(v) for v in torch.randint(side // 4, 5 * side // 8 + 1, (2,), generator=gen))
        y, x = (int(torch.randint(0, side - s + 1, (1,), generator=gen)) for s in (h, w))
        if torch.rand(1, generator=gen).item() < 0.5:
            holes[i, y:y + h, x:x + w] = True
        else:
            noise = torch.randn(1, 1, 6, 6, generator=gen)
            field = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)[0, 0]
            yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
            blob = field - 1.5 * (yy**2 + xx**2) > -0.75
            blob[h // 2, w // 2] = True  # never empty
            holes[i, y:y + h, x:x + w] = blob
    return holes


def random_crops(photos, n, side, gen):
    """[n, 3, side, side] float 0..1: a random square of a random photo (side up to the photo's shorter
    side), resized to `side`, flipped left-right half the time."""
    out = torch.empty(n, 3, side, side)
    for i in range(n):
        photo = photos[int(torch.randint(len(photos), (1,), generator=gen))]
        H, W = photo.shape[1:]
        c = int(torch.randint(side, min(H, W) + 1, (1,), generator=gen))
        y = int(torch.randint(0, H - c + 1, (1,), generator=gen))
        x = int(torch.randint(0, W - c + 1, (1,), generator=gen))
        crop = photo[:, y:y + c, x:x + c].float()[None] / 255
        crop = F.interpolate(crop, size=(side, side), mode="area")[0] if c != side else crop[0]
        out[i] = crop.flip(-1) if torch.rand(1, generator=gen).item() < 0.5 else crop
    return out


def hole_l2(pred, real, holes):
    """Mean squared error over the hole pixels (all three channels)."""
    m = holes[:, None].to(pred.dtype)
    return ((pred - real) ** 2 * m).sum() / (3 * m.sum()).clamp_min(1)


class Trainer:
    """The networks, optimisers and random state of one training run; state() / load() round-trip it."""

    def __init__(self, config, lr, l2_weight, adv_weight, device, seed):
        torch.manual_seed(seed)
        self.config = config
        self.net = ContentNet(config).to(device)
        self.disc = Discriminator(config).to(device)
        self.opt_g = torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.999))
        self.l2_weight, self.adv_weight, self.device = l2_weight, adv_weight, device
        self.gen = torch.Generator().manual_seed(seed)  # crops and holes
        self.step = 0

    def train_step(self, photos, batch):
        real = random_crops(photos, batch, self.config.size, self.gen).to(self.device)
        holes = random_holes(batch, self.config.size, self.gen).to(self.device)
        self.net.train(), self.disc.train()
        pred = self.net(real, holes)
        l2 = hole_l2(pred, real, holes)
        loss, adv, d_loss = self.l2_weight * l2, torch.zeros(()), torch.zeros(())
        if self.adv_weight > 0:
            completed = torch.where(holes[:, None], pred, real)
            logits_fake = self.disc(completed, holes)
            adv = F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))
            loss = loss + self.adv_weight * adv
        self.opt_g.zero_grad()
        loss.backward()
        self.opt_g.step()
        if self.adv_weight > 0:
            logits_real = self.disc(real, holes)
            logits_fake = self.disc(completed.detach(), holes)
            d_loss = (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real)) +
                      F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))) / 2
            self.opt_d.zero_grad()
            d_loss.backward()
            self.opt_d.step()
        self.step += 1
        return l2.item(), adv.item(), d_loss.item()

    def state(self):
        return {"config": asdict(self.config), "generator": self.net.state_dict(),
                "discriminator": self.disc.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "step": self.step, "data_rng": self.gen.get_state(),
                "torch_rng": torch.get_rng_state()}

    @classmethod
    def resume(cls, path, lr, l2_weight, adv_weight, device):
        """The run saved at `path`, ready to go on exactly where it stopped."""
        state = read_checkpoint(path)
        try:
            trainer = cls(ContentNetConfig(**state["config"]), lr, l2_weight, adv_weight, device, seed=0)
            trainer.net.load_state_dict(state["generator"])
            trainer.disc.load_state_dict(state["discriminator"])
            trainer.opt_g.load_state_dict(state["opt_g"])
            trainer.opt_d.load_state_dict(state["opt_d"])
            for opt in (trainer.opt_g, trainer.opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            trainer.gen.set_state(state["data_rng"])
            torch.set_rng_state(state["torch_rng"])
            trainer.step = int(state["step"])
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:
            raise ValueError(f"{path}: cannot resume from this checkpoint ({exc})") from None
        return trainer


def train(args):
    if args.steps < 1 or args.batch_size < 1 or args.checkpoint_every < 1:
        raise TrainError("--steps, --batch-size and --checkpoint-every must be at least 1")
    if args.lr <= 0 or args.l2_weight < 0 or args.adv_weight < 0 or args.l2_weight + args.adv_weight == 0:
        raise TrainError("--lr must be positive, the loss weights non-negative and not both zero")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA GPU is available")
    try:
        config = ContentNetConfig(size=args.size, width=args.width, code=args.code, disc_width=args.disc_width)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    # The checkpoint's folder is made if missing (as save_checkpoint does); anything else that would stop
    # the first checkpoint fails here, before any training.
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    check_writable(args.output)
    resuming = args.resume and os.path.exists(args.output)
    if resuming:
        trainer = Trainer.resume(args.output, args.lr, args.l2_weight, args.adv_weight, args.device)
    else:
        trainer = Trainer(config, args.lr, args.l2_weight, args.adv_weight, args.device, args.seed)
    photos, unreadable = read_photos(args.images, trainer.config.size)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    say(f"training on {len(photos)} images from {args.images}"
        + (f" (skipped {len(unreadable)} unreadable: {', '.join(unreadable[:5])})" if unreadable else "")
        + (f"; resuming at step {trainer.step}" if resuming else ""))
    from tqdm.auto import tqdm

    deadline = time.monotonic() + 60 * args.time_budget if args.time_budget else math.inf
    bar = tqdm(total=args.steps, initial=trainer.step, desc="train_content", unit="step", disable=args.quiet)
    running = None
    while trainer.step < args.steps and time.monotonic() < deadline:
        losses = trainer.train_step(photos, args.batch_size)
        running = losses if running is None else tuple(0.95 * r + 0.05 * v for r, v in zip(running, losses))
        bar.update(1)
        bar.set_postfix(l2=f"{running[0]:.4f}", adv=f"{running[1]:.3f}", disc=f"{running[2]:.3f}")
        if trainer.step % args.checkpoint_every == 0:
            save_checkpoint(args.output, trainer.state())
    bar.close()
    save_checkpoint(args.output, trainer.state())
    stop = "the time budget ran out" if trainer.step < args.steps else "all steps done"
    say(f"wrote {args.output} at step {trainer.step} ({stop})")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m npsynth_ext.train_content", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", help="folder of training photos")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (and to continue with --resume)")
    p.add_argument("--steps", type=int, default=2000, help="total training steps (default %(default)s)")
    p.add_argument("--time-budget", type=float, metavar="MIN", help="stop after this many minutes")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default %(default)s)")
    p.add_argument("--l2-weight", type=float, default=0.999, help="reconstruction loss weight (default %(default)s)")
    p.add_argument("--adv-weight", type=float, default=0.001, help="adversarial loss weight (default %(default)s)")
    defaults = ContentNetConfig()
    p.add_argument("--size", type=int, default=defaults.size, help="network side (default %(default)s)")
    p.add_argument("--width", type=int, default=defaults.width, help="first-layer channels (default %(default)s)")
    p.add_argument("--code", type=int, default=defaults.code, help="bottleneck size (default %(default)s)")
    p.add_argument("--disc-width", type=int, default=defaults.disc_width)
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run saved in OUTPUT (its network shape)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_command("npsynth_ext.train_content", train, args, (TrainError, ValueError, OSError),
                       "the last checkpoint is kept")


if __name__ == "__main__":
    sys.exit(main())
