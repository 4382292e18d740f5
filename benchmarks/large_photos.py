"""Fills of large photos and of several small holes: time and peak memory, as ratios to the VGG unit.

    python benchmarks/large_photos.py [CASE ...] [--save DIR]

Each case is filled with the default options in a fresh process, which reports its seconds and its peak
resident set (the whole process: Python, torch, the VGG weights and the fill). The VGG unit, the seconds
of one VGG-19 forward and backward to relu4_1 at 512x512 (the best of three), is measured before and after
the cases in this process, so every ratio is to a unit of the same run. --save writes each result, and a
100% crop around its hole, into DIR.

Cases (the photos are made from scikit-image's, nothing is downloaded):
  centre512    the 256x256 centre hole of the astronaut at 512x512 (one 512 frame)
  two_holes    two 60x50 holes in opposite corners of the coffee photo at 640x427 (two 128 frames)
  frame1024    a 500x500 hole in the middle of a 2560x1708 photo of grass, the 512px texture tiled (a
               1024 frame at native resolution)
  capped1024   the same at --max-frame 512 (the 1024 frame worked at 512 and pasted back upsampled)
  frame2048    a 1000x1000 hole in the same photo (a 2048 frame)
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CASES = ["centre512", "two_holes", "frame1024", "capped1024", "frame2048"]


def grass_photo():
    """2560x1708: scikit-image's 512x512 grass, tiled and tinted green, so it has detail at every pixel."""
    from skimage import data

    grey = np.tile(data.grass(), (4, 5))[:1708, :2560].astype(float)
    return np.stack([grey * 0.7, grey, grey * 0.45], -1).round().astype(np.uint8)


def case_input(name):
    """(photo, hole, options) of a case."""
    from PIL import Image
    from skimage import data

    if name == "centre512":
        photo = np.asarray(Image.fromarray(data.astronaut()).resize((512, 512), Image.BICUBIC)).copy()
        hole = np.zeros((512, 512), bool)
        hole[128:384, 128:384] = True
        return photo, hole, {}
    if name == "two_holes":
        photo = np.asarray(Image.fromarray(data.coffee()).resize((640, 427), Image.BICUBIC)).copy()
        hole = np.zeros((427, 640), bool)
        hole[20:70, 30:90] = True
        hole[360:410, 560:620] = True
        return photo, hole, {}
    photo = grass_photo()
    hole = np.zeros(photo.shape[:2], bool)
    half = 500 if name == "frame2048" else 250
    hole[854 - half:854 + half, 1280 - half:1280 + half] = True
    return photo, hole, {"max_frame": 512} if name == "capped1024" else {}


def run_one(name, save):
    """Fill one case in this process; print a JSON line with its seconds, peak RSS and frames."""
    from PIL import Image

    from npsynth_ext import masks
    from npsynth_ext.options import FillOptions
    from npsynth_ext.pipeline import fill_u8
    from npsynth_ext.vgg import load_texture_net

    photo, hole, options = case_input(name)
    opts = FillOptions(progress=False, **options)
    net = load_texture_net()
    frames = masks.plan_frames(hole, opts.max_frame)
    timings = {}
    start = time.perf_counter()
    out = fill_u8(photo, hole, opts, timings, net=net)
    seconds = time.perf_counter() - start
    if save:
        os.makedirs(save, exist_ok=True)
        Image.fromarray(out).save(os.path.join(save, f"{name}.png"))
        ys, xs = np.nonzero(hole)
        y, x = max(ys.min() - 100, 0), max(xs.min() - 100, 0)  # the hole's top-left corner and its ring
        Image.fromarray(out[y:y + 400, x:x + 400]).save(os.path.join(save, f"{name}_crop100.png"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"case": name, "seconds": seconds, "peak_rss_mb": peak_mb,
                      "frames": [(f.side, f.work) for f in frames], "levels": timings}))


def vgg_unit():
    """Seconds of one VGG-19 forward and backward to relu4_1 at 512x512, the best of three."""
    import torch

    from npsynth_ext.vgg import load_texture_net

    net = load_texture_net()
    x = torch.rand(1, 3, 512, 512, requires_grad=True)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        features = net(x)
        sum(f.sum() for f in features.values()).backward()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="*", default=CASES, help=f"some of {', '.join(CASES)} (default: all)")
    p.add_argument("--save", metavar="DIR")
    p.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)  # the child process's case
    args = p.parse_args()
    if args.one:
        return run_one(args.one, args.save)
    if set(args.cases) - set(CASES):
        p.error(f"unknown cases {sorted(set(args.cases) - set(CASES))}; known: {', '.join(CASES)}")
    unit_before = vgg_unit()
    results = []
    for name in args.cases:
        cmd = [sys.executable, os.path.abspath(__file__), "--one", name] + (["--save", args.save] if args.save else [])
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results.append(json.loads(line))
        print(line, flush=True)
    unit = (unit_before + vgg_unit()) / 2
    print(f"\nVGG unit: {unit:.2f} s (mean of before and after: {unit_before:.2f} s before)")
    print("| case | frames (side -> worked at) | VGG units | seconds | peak RSS |")
    print("|---|---|---|---|---|")
    for r in results:
        frames = ", ".join(f"{side}" if side == work else f"{side} -> {work}" for side, work in r["frames"])
        print(f"| {r['case']} | {frames} | {r['seconds'] / unit:.1f} | {r['seconds']:.1f} | "
              f"{r['peak_rss_mb'] / 1024:.1f} GB |")


if __name__ == "__main__":
    main()
