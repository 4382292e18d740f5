"""Quality harness: fill photos and score what a viewer sees around each hole.

    python benchmarks/quality.py [--half tuning|confirmation] [--cases astronaut_centre,gravel]
                                 [--methods ours,telea,patchmatch] [--save DIR] [--gallery DIR]
                                 [--set NAME=VALUE ...]

Photos: six from scikit-image (bundled with it) and the twelve nature photographs of Debian's
mate-backgrounds (`apt-get install mate-backgrounds`), each cropped to its centre square and scaled to
512x512. Holes: a 256x256 centre box, an irregular blob of about its area and thin brush strokes on every
photo; a 256x256 box over the main object of each mate photo; a box touching the astronaut's left edge.
67 cases in all.

Halves: the photos are split, once and for all, into a tuning half (HALVES["tuning"]: the six
scikit-image photos, which chose earlier defaults, and three mate photos) and a confirmation half (the
other nine mate photos). Tune by looking at the tuning half only; a change becomes the default only when
blind pairs on the confirmation half, not looked at while making it, prefer it too (docs/quality.md).
--half picks one; --cases takes full case names or photo or hole names, within the half if one is given.
Photos whose files are missing (mate-backgrounds not installed) are skipped with a note.

Each method's fill is scored over the hole's bounding box grown by MARGIN px, against the photo:
  ST-LPIPS  shift-tolerant LPIPS (AlexNet; `pip install stlpips-pytorch IPython torchsummary`), lower is
            better: a learned perceptual distance that forgives small shifts, so real texture that differs
            from the hidden one in detail but not in kind scores well, and blur, noise and seams score badly;
  SSIM      structural similarity over the same box (scikit-image);
  PSNR      over the hole pixels only: a guard against wrong content, never a target;
  sharp     the hole's mean gradient magnitude over the photo's (information only: noise raises it too).
Methods: ours (npsynth_ext.fill, default options or --set), telea (OpenCV), patchmatch (pypatchmatch,
classic PatchMatch inpainting with 7x7 patches), prior (our content prior alone). Missing packages are
skipped with a note. The summary counts the cases where ours is at most each peer's ST-LPIPS and where its
PSNR is within 2 dB of Telea's, and gives the median fill time in VGG units (seconds over one VGG-19
forward+backward to relu4_1 at 512x512, timed in this process) so machines of different speed compare.

--save DIR writes every method's full result as DIR/METHOD/CASE.png (blind pairs: ../shared/blind_ab.py
make DIR/ours DIR/patchmatch PAIRS); --gallery DIR writes DIR/CASE.png, the hole's surroundings cropped
from truth | ours | patchmatch | telea, for looking at every case.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

SIZE = 512
MARGIN = 16  # pixels of known context around the hole's box that the scores include
GALLERY_MARGIN = 48


MATE_FOLDER = "/usr/share/backgrounds/mate/nature"
# Each mate photo's file and the centre (row, column, in the 512x512 crop) of the 256x256 box over its main
# object, or over its most structured part where it has no single object; clamped to lie inside the photo.
MATE_PHOTOS = {
    "aqua": ("Aqua.jpg", (330, 400)),  # the splash crown
    "blinds": ("Blinds.jpg", (200, 300)),  # crossing blades
    "dune": ("Dune.jpg", (200, 256)),  # the horizon behind the grass tips
    "freshflower": ("FreshFlower.jpg", (230, 220)),  # the bright petal
    "garden": ("Garden.jpg", (250, 370)),  # the flower's centre
    "greenmeadow": ("GreenMeadow.jpg", (200, 256)),  # rows of shoots
    "ladybird": ("LadyBird.jpg", (270, 464)),  # the ladybird on its stem
    "raindrops": ("RainDrops.jpg", (240, 300)),  # drops on the leaf
    "storm": ("Storm.jpg", (330, 256)),  # the horizon
    "twowings": ("TwoWings.jpg", (220, 330)),  # the two seeds
    "wood": ("Wood.jpg", (200, 300)),  # the planks' seam
    "yellowflower": ("YellowFlower.jpg", (380, 500)),  # the flower's centre
}
HALVES = {
    "tuning": ("astronaut", "coffee", "rocket", "chelsea", "brick", "gravel", "aqua", "garden", "dune"),
    "confirmation": ("blinds", "freshflower", "greenmeadow", "ladybird", "raindrops", "storm", "twowings",
                     "wood", "yellowflower"),
}


def square(img):
    """The centre square of a photo (grey made RGB), scaled to SIZE x SIZE."""
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return np.asarray(Image.fromarray(crop).resize((SIZE, SIZE), Image.BICUBIC))


def photos():
    """{name: loader of a 512x512 RGB uint8 photo}: scikit-image's (bundled with it, no download) and the
    mate photos whose files are present."""
    from skimage import data

    out = {
        "astronaut": lambda: square(data.astronaut()),
        "coffee": lambda: square(data.coffee()),
        "rocket": lambda: square(data.rocket()),
        "chelsea": lambda: square(data.chelsea()),
        "brick": lambda: square(data.brick()),
        "gravel": lambda: square(data.gravel()),
    }
    for name, (file, _) in MATE_PHOTOS.items():
        path = os.path.join(MATE_FOLDER, file)
        if os.path.exists(path):
            out[name] = lambda path=path: square(np.asarray(Image.open(path).convert("RGB")))
    return out


def centre_hole():
    m = np.zeros((SIZE, SIZE), bool)
    m[SIZE // 4:3 * SIZE // 4, SIZE // 4:3 * SIZE // 4] = True
    return m


def blob_hole(seed=7):
    """One irregular hole of about the centre box's area: a smooth random field plus a pull towards the
    middle, thresholded, keeping the connected piece around the middle."""
    import torch
    import torch.nn.functional as F
    from scipy import ndimage

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 1, 6, 6, generator=g)
    field = F.interpolate(noise, size=(SIZE, SIZE), mode="bicubic", align_corners=True)[0, 0]
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    r = ((yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2).sqrt() / (SIZE / 2)
    score = (0.5 * field - 2.5 * r).numpy()
    threshold = np.quantile(score, 1 - 0.25)
    pieces, _ = ndimage.label(score > threshold)
    return pieces == pieces[SIZE // 2, SIZE // 2]


def strokes_hole(seed=3, strokes=5, width=14):
    """Thin brush strokes: a few random polylines of `width` px, like a user scribbling over wires."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(strokes):
        points = [tuple(rng.uniform(0.15, 0.85, 2) * SIZE)]
        for _ in range(3):
            step = rng.normal(0, 0.18, 2) * SIZE
            points.append(tuple(np.clip(np.array(points[-1]) + step, 0.05 * SIZE, 0.95 * SIZE)))
        draw.line(points, fill=255, width=width, joint="curve")
    return np.asarray(img) > 0


def border_hole():
    """A 192x160 box on the photo's left edge: the frame must be padded, and no context lies to its left."""
    m = np.zeros((SIZE, SIZE), bool)
    m[SIZE // 2 - 80:SIZE // 2 + 80, :192] = True
    return m


def object_hole(centre):
    """A 256x256 box centred on `centre` (row, column), moved inside the photo where it would stick out."""
    half = SIZE // 4
    y, x = (min(max(c, half), SIZE - half) for c in centre)
    m = np.zeros((SIZE, SIZE), bool)
    m[y - half:y + half, x - half:x + half] = True
    return m


HOLES = {"centre": centre_hole, "blob": blob_hole, "strokes": strokes_hole}
BORDER_PHOTO = "astronaut"


def cases(half=None):
    """{case name: (photo name, hole factory)}: every photo with each hole, the mate photos with their
    object box, and one border case; only the photos of HALVES[half] if half is given."""
    available = photos()
    missing = [name for name in MATE_PHOTOS if name not in available]
    if missing:
        print(f"note: skipping {len(missing)} mate photos not found in {MATE_FOLDER} "
              "(apt-get install mate-backgrounds)", file=sys.stderr)
    out = {}
    for photo in available:
        if half and photo not in HALVES[half]:
            continue
        for hole, make in HOLES.items():
            out[f"{photo}_{hole}"] = (photo, make)
        if photo in MATE_PHOTOS:
            out[f"{photo}_object"] = (photo, lambda c=MATE_PHOTOS[photo][1]: object_hole(c))
        if photo == BORDER_PHOTO:
            out[f"{photo}_border"] = (photo, border_hole)
    return out


def box_of(mask, margin, shape):
    ys, xs = np.nonzero(mask)
    return (max(0, ys.min() - margin), min(shape[0], ys.max() + 1 + margin),
            max(0, xs.min() - margin), min(shape[1], xs.max() + 1 + margin))


def psnr(out, truth, mask):
    err = (out.astype(np.float64) - truth.astype(np.float64))[mask]
    return 10 * np.log10(255.0**2 / max((err**2).mean(), 1e-12))


def sharpness(img, mask):
    """Mean gradient magnitude (forward differences of the grey image) over the hole."""
    g = img.astype(np.float64).mean(-1)
    gy = np.diff(g, axis=0)[:, :-1]
    gx = np.diff(g, axis=1)[:-1, :]
    return np.hypot(gx, gy)[mask[:-1, :-1]].mean()


class Scorer:
    """ST-LPIPS and SSIM over the hole's box grown by MARGIN."""

    def __init__(self):
        import torch
        from stlpips_pytorch import stlpips

        self.torch = torch
        self.lpips = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False).eval()

    def __call__(self, out, truth, mask):
        from skimage.metrics import structural_similarity

        y0, y1, x0, x1 = box_of(mask, MARGIN, mask.shape)
        a, b = out[y0:y1, x0:x1], truth[y0:y1, x0:x1]
        as_tensor = lambda x: self.torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
        with self.torch.no_grad():
            lp = float(self.lpips(as_tensor(a), as_tensor(b)))
        return {"lpips": lp, "ssim": structural_similarity(a, b, channel_axis=2, data_range=255),
                "psnr": psnr(out, truth, mask), "sharp": sharpness(out, mask) / sharpness(truth, mask)}


def vgg_unit_seconds(repeats=3):
    """Median seconds of one VGG-19 forward+backward to relu4_1 on a 512x512 image, on the CPU."""
    import torch

    from npsynth_ext.vgg import load_texture_net

    net = load_texture_net()
    x = torch.rand(1, 3, SIZE, SIZE, requires_grad=True)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        sum(f.square().mean() for f in net(x).values()).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def method_ours(**options):
    """Our fill with FillOptions `options`; content_weights=PATH loads a trained content network as the
    first guess (the CLI's --content-weights)."""
    import npsynth_ext
    from npsynth_ext.content_net import load_content_net
    from npsynth_ext.vgg import load_texture_net

    net = load_texture_net()
    if "content_weights" in options:
        options["content"] = load_content_net(options.pop("content_weights"))

    def run(img, mask):
        return npsynth_ext.fill(img, mask, net=net, progress=False, **options)

    return run


def method_telea():
    import cv2

    return lambda img, mask: cv2.inpaint(img, mask.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)


def method_patchmatch():
    import patchmatch

    if not patchmatch.patchmatch_available:
        raise ImportError("pypatchmatch's native library is unavailable")
    return lambda img, mask: patchmatch.inpaint(img, mask.astype(np.uint8) * 255, patch_size=7)


METHODS = {
    "ours": method_ours,
    "prior": lambda: method_ours(iters=(0, 0, 0), pixel_rounds=0),
    "telea": method_telea,
    "patchmatch": method_patchmatch,
}
GALLERY = ("ours", "patchmatch", "telea")


def _number_or_text(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_options(items):
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        options[key] = tuple(_number_or_text(v) for v in value.split(",")) if "," in value else _number_or_text(value)
    return options


def select_cases(spec, half, parser):
    every = cases(half)
    if not every:
        parser.error(f"no photos of the {half} half were found (apt-get install mate-backgrounds)")
    if not spec:
        return every
    chosen = {}
    for word in spec.split(","):
        hits = {name: c for name, c in every.items() if word == name or word in name.split("_")}
        if not hits:
            parser.error(f"no case matches {word!r}; cases: {', '.join(every)}")
        chosen.update(hits)
    return chosen


def gallery_picture(results, mask, names):
    """The hole's surroundings from each result side by side, each labelled, with the hole outlined in a
    thin strip above the row."""
    y0, y1, x0, x1 = box_of(mask, GALLERY_MARGIN, mask.shape)
    tiles = []
    for name in names:
        tile = Image.fromarray(np.ascontiguousarray(results[name][y0:y1, x0:x1]))
        canvas = Image.new("RGB", (tile.width, tile.height + 14), "white")
        canvas.paste(tile, (0, 14))
        ImageDraw.Draw(canvas).text((2, 1), name, fill="black")
        tiles.append(np.asarray(canvas))
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    return Image.fromarray(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=sorted(HALVES), help="only the photos of this half (default: both)")
    parser.add_argument("--cases", help="comma-separated case, photo or hole names (default: all)")
    parser.add_argument("--methods", default="ours,telea,patchmatch", help="comma-separated, from: "
                        + ", ".join(METHODS))
    parser.add_argument("--save", metavar="DIR", help="write DIR/METHOD/CASE.png for every result")
    parser.add_argument("--gallery", metavar="DIR", help="write DIR/CASE.png: truth | ours | patchmatch | telea")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a fill option for 'ours' (e.g. --set alpha=2 --set iters=100,40,20)")
    args = parser.parse_args()
    chosen = select_cases(args.cases, args.half, parser)
    methods = {}
    for name in args.methods.split(","):
        if name not in METHODS:
            parser.error(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
        if name in ("ours", "prior"):
            methods[name] = METHODS[name](**parse_options(args.set)) if name == "ours" else METHODS[name]()
            continue
        try:
            methods[name] = METHODS[name]()
        except ImportError as exc:
            print(f"note: skipping {name}: {exc}", file=sys.stderr)
    for folder in filter(None, [args.gallery] + [os.path.join(args.save, m) for m in methods if args.save]):
        os.makedirs(folder, exist_ok=True)
    scorer = Scorer()
    unit = vgg_unit_seconds()
    print(f"VGG unit (VGG-19 forward+backward to relu4_1 at {SIZE}x{SIZE}): {unit:.2f} s")
    print(f"| {'case':<20} | {'method':<10} | {'ST-LPIPS':>8} | {'SSIM':>5} | {'PSNR dB':>7} | {'sharp':>5} | "
          f"{'VGG units':>9} |")
    print(f"|{'-' * 22}|{'-' * 12}|{'-' * 10}|{'-' * 7}|{'-' * 9}|{'-' * 7}|{'-' * 11}|")
    table, photo_cache, loaders = {}, {}, photos()
    for case, (photo, make_hole) in chosen.items():
        if photo not in photo_cache:
            photo_cache[photo] = loaders[photo]()
        truth = photo_cache[photo]
        mask = make_hole()
        damaged = truth.copy()
        damaged[mask] = 0
        results = {"truth": truth}
        for name, run in methods.items():
            start = time.perf_counter()
            out = np.asarray(run(damaged, mask))
            units = (time.perf_counter() - start) / unit
            assert (out[~mask] == truth[~mask]).all(), f"{name} changed pixels outside the hole"
            s = table.setdefault(case, {})[name] = {**scorer(out, truth, mask), "units": units}
            print(f"| {case:<20} | {name:<10} | {s['lpips']:8.4f} | {s['ssim']:5.3f} | {s['psnr']:7.2f} | "
                  f"{s['sharp']:5.2f} | {units:9.1f} |", flush=True)
            results[name] = out
            if args.save:
                Image.fromarray(out).save(os.path.join(args.save, name, f"{case}.png"))
        if args.gallery:
            shown = ["truth"] + [m for m in GALLERY if m in results]
            gallery_picture(results, mask, shown).save(os.path.join(args.gallery, f"{case}.png"))
    summarise(table)


def summarise(table):
    if not all("ours" in row for row in table.values()):
        return
    n = len(table)
    print(f"\nsummary over {n} cases:")
    for peer in ("patchmatch", "telea"):
        rows = [row for row in table.values() if peer in row]
        if rows:
            wins = sum(row["ours"]["lpips"] <= row[peer]["lpips"] for row in rows)
            print(f"  ST-LPIPS of ours <= {peer}: {wins}/{len(rows)}")
    rows = [row for row in table.values() if "telea" in row]
    if rows:
        ok = sum(row["ours"]["psnr"] >= row["telea"]["psnr"] - 2 for row in rows)
        print(f"  PSNR of ours within 2 dB of Telea's: {ok}/{len(rows)}")
    print(f"  median fill cost of ours: {statistics.median(row['ours']['units'] for row in table.values()):.1f} "
          "VGG units")
    for name in next(iter(table.values())):
        print(f"  mean ST-LPIPS of {name}: {statistics.mean(row[name]['lpips'] for row in table.values() if name in row):.4f}")


if __name__ == "__main__":
    main()
