"""Where one default fill's time goes, stage by stage: the demo photo (hole: the centre half of each side)
at a frame of `side`, default options.

    python benchmarks/fill_stages.py [--side 512] [--device cpu|cuda] [--repeats 3] [--vgg-precision P]

Each stage is one of the pipeline's own functions, wrapped so that the device is synchronised before and
after it: its seconds are its own, not those of work queued before it (the syncs add a few milliseconds
on a GPU). A stage's seconds exclude the stages it calls, so the rows add up to the fill: the patch prior
runs the level loop with the pixel step's matcher too, whose rows are then named "first guess: ...";
optimise runs the re-matches, and "L-BFGS and VGG" is optimise's own time. Seconds are those of the median run; the VGG
unit (VGG-19 forward+backward to relu4_1 at 512x512) is timed in the same process.
"""
import argparse
import os
import sys
import time
from collections import defaultdict

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import dtype_name, vgg_unit_seconds  # noqa: E402

from npsynth_ext import optimise, pipeline, pixels  # noqa: E402
from npsynth_ext.fill_command import DEMO_IMAGE, DEMO_MASK  # noqa: E402
from npsynth_ext.vgg import PRECISIONS, load_texture_net  # noqa: E402

SPENT = defaultdict(float)
CHILDREN = [0.0]  # seconds spent in wrapped stages called by the stage now running (a stack)
RUNNING = []  # names of the wrapped stages now running, outermost first
PRIOR = "first guess"


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(name, fn, device):
    """fn, with its synchronised seconds, less those of the wrapped stages it calls, added to SPENT[name]
    (the first guess runs the pixel step's matcher too: what runs inside it is named "first guess: ...")."""
    def wrapper(*args, **kwargs):
        label = f"{PRIOR}: {name}" if PRIOR in RUNNING and name != PRIOR else name
        _sync(device)
        start = time.perf_counter()
        CHILDREN.append(0.0)
        RUNNING.append(name)
        try:
            return fn(*args, **kwargs)
        finally:
            _sync(device)
            RUNNING.pop()
            seconds = time.perf_counter() - start
            SPENT[label] += seconds - CHILDREN.pop()
            CHILDREN[-1] += seconds
    return wrapper


def instrument(device):
    """Wrap the pipeline's stages in place (for this process only)."""
    pipeline.first_guess = timed(PRIOR, pipeline.first_guess, device)
    pipeline.frame_roughness = timed("roughness of the frame", pipeline.frame_roughness, device)
    pipeline.cells_to_pixels = timed("deep matches to pixels", pipeline.cells_to_pixels, device)
    pipeline.upsample_field = timed("match fields doubled", pipeline.upsample_field, device)
    pipeline.optimise = timed("optimise", pipeline.optimise, device)
    matcher = pipeline.PixelMatcher
    matcher.__init__ = timed("pixel matcher set-up", matcher.__init__, device)
    matcher.replay = timed("pixel step: replay at the next scale", matcher.replay, device)
    matcher.smooth_roughness = timed("pixel step: roughness start", matcher.smooth_roughness, device)
    matcher.rebuild = timed("pixel step: the rest of rebuild", matcher.rebuild, device)
    pixels.patchmatch = timed("pixel step: its patchmatch calls", pixels.patchmatch, device)
    matcher.vote = timed("pixel step: votes (and the blend)", matcher.vote, device)
    optimise.TextureTerm.rematch = timed("re-matches (patch_nn, patchmatch)", optimise.TextureTerm.rematch, device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the median run is reported (odd is best)")
    parser.add_argument("--vgg-precision", choices=PRECISIONS, default=pipeline.FillOptions.vgg_precision,
                        help="FillOptions.vgg_precision (default %(default)s, the fill's)")
    args = parser.parse_args()
    if args.repeats < 1 or args.side < 32:
        parser.error(f"--repeats must be >= 1 and --side >= 32; got {args.repeats} and {args.side}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU is visible to torch")
    net = load_texture_net(device=args.device)
    unit = vgg_unit_seconds(net, args.device, 3)
    image = np.asarray(Image.open(DEMO_IMAGE).convert("RGB").resize((args.side, args.side), Image.BICUBIC)).copy()
    hole = np.asarray(Image.open(DEMO_MASK).resize((args.side, args.side), Image.NEAREST)) > 0
    opts = pipeline.FillOptions(device=args.device, progress=False, vgg_precision=args.vgg_precision)
    pipeline.fill_u8(image, hole, opts, net=net)  # warm-up: kernels loaded, allocator primed
    instrument(args.device)
    runs = []
    for _ in range(args.repeats):
        SPENT.clear()
        start = time.perf_counter()
        pipeline.fill_u8(image, hole, opts, net=net)
        runs.append((time.perf_counter() - start, dict(SPENT)))
    runs.sort(key=lambda r: r[0])
    total, spent = runs[len(runs) // 2]
    spent["L-BFGS and VGG"] = spent.pop("optimise", 0.0)
    spent["the rest (framing, resizing, copies)"] = total - sum(spent.values())
    dtype = dtype_name(args.vgg_precision, args.device)
    print(f"{args.side}x{args.side} demo fill on {args.device}, VGG in {dtype}: median of {args.repeats} runs "
          f"{total:.3f} s = {total / unit:.1f} VGG units (VGG unit {unit * 1e3:.1f} ms); all runs "
          + ", ".join(f"{r[0]:.3f}" for r in runs) + " s")
    print("\n| stage | seconds | share | VGG units |\n|---|---|---|---|")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {seconds:.3f} | {seconds / total:.0%} | {seconds / unit:.1f} |")


if __name__ == "__main__":
    main()
