"""Command line: fill the hole of a photo.

    python -m npsynth_ext.fill IMAGE (--mask MASK | --box X Y W H) -o OUT [options]
    python -m npsynth_ext.fill --demo [-o OUT]

MASK is an image of IMAGE's size whose nonzero pixels are the hole; --box gives a rectangle instead. The
result is written atomically (a temporary file renamed into place), so OUT is never half-written. Bad input
(missing or unreadable files, a bad mask, an unwritable output) gives a one-line error and exit code 2.
"""
import argparse
import os
import sys
import time
import types

import numpy as np

from . import pipeline
from .cli import check_writable, run_command
from .images import write_image_atomically
from .masks import MaskError, box_mask, check_mask, load_mask

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEMO_IMAGE = os.path.join(DATA, "demo.jpg")
DEMO_MASK = os.path.join(DATA, "demo_mask.png")  # its 256x256 centre
DEMO_OUTPUT = "npsynth_demo.png"


class CliError(Exception):
    """A problem with the command line's input, reported as one line."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m npsynth_ext.fill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", help="the photo to fill (any format Pillow reads)")
    hole = p.add_mutually_exclusive_group()
    hole.add_argument("--mask", help="mask image, same size as IMAGE, nonzero = hole")
    hole.add_argument("--box", nargs=4, type=int, metavar=("X", "Y", "W", "H"), help="rectangular hole")
    p.add_argument("-o", "--output", help=f"where to write the result (PNG, JPEG, ...); --demo: {DEMO_OUTPUT}")
    p.add_argument("--demo", action="store_true", help="fill the bundled demo photo's 256x256 centre hole")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-steps", metavar="DIR", help="also write each scale's result into DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    defaults = pipeline.FillOptions()
    p.add_argument("--alpha", type=float, default=defaults.alpha, help="texture weight (default %(default)s)")
    p.add_argument("--beta", type=float, default=defaults.beta, help="smoothness weight (default %(default)s)")
    p.add_argument("--iters", type=int, nargs=3, default=list(defaults.iters), metavar=("N1", "N2", "N3"),
                   help="L-BFGS iterations per scale, coarse to fine (default %(default)s)")
    p.add_argument("--metric", choices=["cosine", "l2"], nargs="+", default=list(defaults.metric),
                   metavar="M", help="patch matching, one metric or one per scale: cosine, l2 (default %(default)s)")
    p.add_argument("--search", choices=["patchmatch", "exact"], default=defaults.search,
                   help="nearest-neighbour search when re-matching: patchmatch from the previous matches, or "
                        "exact every time (slower) (default %(default)s)")
    p.add_argument("--max-detail-gain", type=float, default=defaults.max_detail_gain, metavar="G",
                   help="amplify the hole's finest detail, by at most G, until it is as sharp as the photo "
                        "around it; 1 turns this off (default %(default)s)")
    p.add_argument("--max-frame", type=int, default=defaults.max_frame,
                   help="work on larger frames downscaled to this side (default %(default)s)")
    p.add_argument("--vgg-weights", help="a torchvision VGG-19 checkpoint instead of the bundled Caffe weights")
    p.add_argument("--content-weights", metavar="MODEL",
                   help="a content network trained with python -m npsynth_ext.train_content, as the content prior "
                        "instead of the classical one")
    return p


def read_image(path):
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise CliError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB")).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise CliError(f"cannot read image {path}: {exc}") from None


def check_output(path):
    """Fail before any work if the result could not be written."""
    from PIL import Image

    ext = os.path.splitext(path)[1].lower()
    if ext not in Image.registered_extensions():
        raise CliError(f"output {path}: unknown image extension {ext or '(none)'!r}; use e.g. .png or .jpg")
    check_writable(path)


def resolve_inputs(args):
    """(image uint8 HxWx3, hole bool HxW, output path) from the arguments, all checked."""
    if args.demo:
        if args.image or args.mask or args.box:
            raise CliError("--demo takes no IMAGE, --mask or --box")
        image = read_image(DEMO_IMAGE)
        H, W = image.shape[:2]
        hole = load_mask(DEMO_MASK, (W, H))
        output = args.output or DEMO_OUTPUT
    else:
        if not args.image:
            raise CliError("give an IMAGE (or --demo)")
        if not (args.mask or args.box):
            raise CliError("give the hole with --mask MASK or --box X Y W H")
        if not args.output:
            raise CliError("give the output path with -o OUT")
        image = read_image(args.image)
        H, W = image.shape[:2]
        if args.mask:
            if not os.path.isfile(args.mask):
                raise CliError(f"mask not found: {args.mask}")
            try:
                hole = load_mask(args.mask, (W, H))
            except OSError as exc:
                raise CliError(f"cannot read mask {args.mask}: {exc}") from None
        else:
            hole = box_mask((W, H), *args.box)
        output = args.output
    return image, check_mask(hole, (H, W)), output


def run(args):
    # Options first (FillOptions checks them all, the device and weights file included), then the inputs and
    # the output path: every check before any real work.
    if len(args.metric) not in (1, 3):
        raise CliError("--metric takes one metric or three (one per scale)")
    metric = args.metric[0] if len(args.metric) == 1 else tuple(args.metric)
    opts = pipeline.FillOptions(alpha=args.alpha, beta=args.beta, iters=tuple(args.iters), metric=metric,
                                search=args.search, max_detail_gain=args.max_detail_gain,
                                max_frame=args.max_frame, vgg_weights=args.vgg_weights,
                                content_weights=args.content_weights, device=args.device, seed=args.seed,
                                progress=not args.quiet, save_steps=args.save_steps)
    image, hole, output = resolve_inputs(args)
    check_output(output)
    start = time.perf_counter()
    timings = {}
    result = pipeline.fill_u8(image, hole, opts, timings)
    write_image_atomically(result, output)
    if not args.quiet:
        split = ", ".join(f"{size}px {seconds:.1f} s" for size, seconds in timings.items())
        print(f"wrote {output}: {image.shape[1]}x{image.shape[0]}, {int(hole.sum())} hole pixels, "
              f"{time.perf_counter() - start:.1f} s ({split})")


def main(argv=None):
    args = build_parser().parse_args(argv)
    # bad input, unreadable or unwritable files
    return run_command("npsynth_ext.fill", run, args, (CliError, MaskError, OSError, ValueError),
                       "nothing was written")


class _CallableModule(types.ModuleType):
    """`import npsynth_ext.fill` makes the attribute npsynth_ext.fill this module instead of the fill()
    function; calling the module still fills, so npsynth_ext.fill(image, mask) works either way."""

    def __call__(self, image, mask, **options):
        return pipeline.fill(image, mask, **options)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
