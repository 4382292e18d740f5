"""Quality harness: fill scikit-image photos and score each method in the hole.

    python benchmarks/quality.py [--images astronaut,coffee] [--holes centre,blob] [--methods ...] [--out DIR]
                                 [--set NAME=VALUE ...]

For each 512x512 photo and hole (a 256x256 centre box, and an irregular blob of similar area) it prints the
PSNR in the hole against the original photo, a sharpness ratio (mean gradient magnitude in the hole, output
over original: 1 is as sharp as the real photo, a blur scores ~0.1-0.2), and the time per fill, for:
  ours      npsynth_ext.fill with default options
  prior     our content prior alone (the same pipeline with no optimisation)
  ours-net, prior-net   the same with the content network of --content-weights as the prior
  telea     OpenCV's Telea inpainting (optional: pip install opencv-python-headless)
  patchmatch  classic PatchMatch inpainting (optional: pip install pypatchmatch)
Methods whose package is missing are skipped with a note. --out writes before/after pictures.
"""
import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

SIZE = 512


def photos():
    """512x512 RGB uint8 test photos from scikit-image (bundled with it, no download)."""
    from skimage import data

    def square(img):
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        h, w = img.shape[:2]
        s = min(h, w)
        crop = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        return np.asarray(Image.fromarray(crop).resize((SIZE, SIZE), Image.BICUBIC))

    return {
        "astronaut": lambda: square(data.astronaut()),
        "coffee": lambda: square(data.coffee()),
        "rocket": lambda: square(data.rocket()),
        "chelsea": lambda: square(data.chelsea()),
        "brick": lambda: square(data.brick()),
        "gravel": lambda: square(data.gravel()),
    }


def centre_hole():
    m = np.zeros((SIZE, SIZE), bool)
    m[SIZE // 4:3 * SIZE // 4, SIZE // 4:3 * SIZE // 4] = True
    return m


def blob_hole(seed=7):
    """An irregular hole of about the centre box's area: a smoothed random field, thresholded."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 1, SIZE // 16, SIZE // 16, generator=g)
    field = F.interpolate(noise, size=(SIZE, SIZE), mode="bicubic", align_corners=False)[0, 0]
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    r = ((yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2).sqrt() / (SIZE / 2)
    score = field - 2.5 * r  # favour the middle, keep it away from the border
    threshold = score.flatten().kthvalue(int(SIZE * SIZE * (1 - 0.25))).values
    return (score > threshold).numpy()


HOLES = {"centre": centre_hole, "blob": blob_hole}


def psnr(out, truth, mask):
    err = (out.astype(np.float64) - truth.astype(np.float64))[mask]
    return 10 * np.log10(255.0**2 / max((err**2).mean(), 1e-12))


def sharpness(img, mask):
    """Mean gradient magnitude (forward differences of the grey image) over the hole."""
    g = img.astype(np.float64).mean(-1)
    gy = np.diff(g, axis=0)[:, :-1]
    gx = np.diff(g, axis=1)[:-1, :]
    return np.hypot(gx, gy)[mask[:-1, :-1]].mean()


def method_ours(**options):
    import npsynth_ext
    from npsynth_ext.vgg import load_texture_net

    net = load_texture_net()

    def run(img, mask):
        return npsynth_ext.fill(img, mask, texture_net=net, progress=False, **options)

    return run


def method_telea():
    import cv2

    return lambda img, mask: cv2.inpaint(img, mask.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)


def method_patchmatch():
    import patchmatch

    if not patchmatch.patchmatch_available:
        raise ImportError("pypatchmatch's native library is unavailable")
    return lambda img, mask: patchmatch.inpaint(img, mask.astype(np.uint8) * 255, patch_size=3)


METHODS = {
    "ours": method_ours,
    "prior": lambda: method_ours(iters=(0, 0, 0), max_detail_gain=1),
    "ours-net": method_ours,
    "prior-net": lambda **options: method_ours(**options, iters=(0, 0, 0), max_detail_gain=1),
    "telea": method_telea,
    "patchmatch": method_patchmatch,
}


def _number_or_text(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=",".join(photos()), help="comma-separated photo names")
    parser.add_argument("--holes", default=",".join(HOLES), help="comma-separated: centre, blob")
    parser.add_argument("--methods", default="ours,prior,telea,patchmatch", help="comma-separated, from: "
                        + ", ".join(METHODS))
    parser.add_argument("--out", help="folder for before/after pictures")
    parser.add_argument("--content-weights", metavar="MODEL",
                        help="a train_content checkpoint, for ours-net and prior-net")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a fill option for 'ours' (e.g. --set alpha=2 --set iters=100,40,20), for tuning")
    args = parser.parse_args()
    options = {}
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = tuple(_number_or_text(v) for v in value.split(",")) if "," in value else _number_or_text(value)
    available = photos()
    images = args.images.split(",")
    for name in images:
        if name not in available:
            parser.error(f"unknown image {name!r}; choose from {', '.join(available)}")
    holes = args.holes.split(",")
    if set(holes) - set(HOLES):
        parser.error(f"holes must be among {', '.join(HOLES)}")
    methods = {}
    for name in args.methods.split(","):
        if name not in METHODS:
            parser.error(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
        if name.endswith("-net") and not args.content_weights:
            parser.error(f"method {name} needs --content-weights")
        try:
            if name == "ours":
                methods[name] = METHODS[name](**options)
            elif name.endswith("-net"):
                methods[name] = METHODS[name](content_weights=args.content_weights)
            else:
                methods[name] = METHODS[name]()
        except ImportError as exc:
            print(f"note: skipping {name}: {exc}", file=sys.stderr)
    if args.out:
        os.makedirs(args.out, exist_ok=True)

    print(f"| {'image':<10} | {'hole':<6} | {'method':<10} | {'PSNR dB':>7} | {'sharpness':>9} | {'time s':>6} |")
    print(f"|{'-' * 12}|{'-' * 8}|{'-' * 12}|{'-' * 9}|{'-' * 11}|{'-' * 8}|")
    for image_name in images:
        truth = available[image_name]()
        for hole_name in holes:
            mask = HOLES[hole_name]()
            damaged = truth.copy()
            damaged[mask] = 0
            sharp_truth = sharpness(truth, mask)
            row = [truth]
            for method_name, run in methods.items():
                start = time.perf_counter()
                out = np.asarray(run(damaged, mask))
                seconds = time.perf_counter() - start
                assert (out[~mask] == truth[~mask]).all(), f"{method_name} changed pixels outside the hole"
                print(f"| {image_name:<10} | {hole_name:<6} | {method_name:<10} | {psnr(out, truth, mask):7.2f} | "
                      f"{sharpness(out, mask) / sharp_truth:9.2f} | {seconds:6.1f} |", flush=True)
                row.append(out)
            if args.out:
                Image.fromarray(np.concatenate(row, 1)).save(os.path.join(args.out, f"{image_name}_{hole_name}.jpg"))


if __name__ == "__main__":
    main()
