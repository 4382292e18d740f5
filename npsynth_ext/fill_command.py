"""Command line (run as `python -m npsynth_ext.fill`, see fill.py): fill the hole of a photo, or of every
photo in a folder.

    python -m npsynth_ext.fill IMAGE (--mask MASK | --mask alpha | --box X Y W H) -o OUT [options]
    python -m npsynth_ext.fill PHOTOS_DIR (--mask-dir MASKS_DIR | --mask alpha | --box X Y W H) -o OUT_DIR
    python -m npsynth_ext.fill --demo [-o OUT]

The hole. MASK is an image of IMAGE's size (both as a viewer shows them: EXIF orientation applied); a
pixel is hole when its brightest colour channel is at least half-bright (>= 128 of 255, >= 32768 of 65535),
so an anti-aliased edge is cut along its middle; the mask's alpha is ignored. `--mask alpha` takes as hole
IMAGE's pixels that are more than half transparent (alpha < 128), and makes them opaque once filled.
--box gives a rectangle. Each separate region of the hole is filled in a square frame of its own around
it (regions close together share one), so small holes in a large photo are quick; a frame is worked at the
photo's own resolution, unless --max-frame caps its side (faster, softer), which is then said on stderr.

The photo. It is filled upright and written upright, with the EXIF orientation tag removed; the rest of
its EXIF and its ICC profile are kept. Greyscale is written back greyscale; 16-bit greyscale keeps its 16
bits outside the hole (the fill itself works in 8 bits); RGBA keeps its alpha byte for byte; palette
images are written as RGB (RGBA if they have transparency). CMYK, 16-bit colour and floating-point photos
are refused with the reason. OUT's extension picks the format (--quality for JPEG and WebP); a format that
would lose the photo's 16 bits or transparency is refused before any work. In a lossless format (PNG,
TIFF, BMP) every pixel outside the hole keeps its bytes.

Folders. Each photo in PHOTOS_DIR (the files whose extension Pillow reads, hidden ones aside) takes as
mask the file of MASKS_DIR with the same name before its extension (case-sensitive, any image extension),
and is written to OUT_DIR (created if missing) under its own name. The VGG network is loaded once, one
progress bar counts the photos, an existing output is skipped unless --overwrite, and a photo that fails
(unreadable, no mask, ...) is reported and skipped. The last line is "N filled, M skipped (exists), K
failed"; the exit code is 1 if K > 0. --ray [ADDRESS] runs the folder on a Ray cluster, with the same
results (docs/cluster.md).

Every result is written atomically (a temporary file renamed into place), so no output is ever
half-written. Bad input (missing or unreadable files, a bad mask, an unwritable output) gives a one-line
error and exit code 2. docs/inputs.md has the details.
"""
import argparse
import os
import sys
import time

from . import pipeline, vgg
from .cli import check_writable, run_command
from .content_net import load_content_net
from .first_guess import PRIOR_NAMES
from .images import alpha_hole, read_photo, restore, writable_pixels, write_photo_atomically
from .masks import MaskError, box_mask, check_mask, plan_frames, read_mask
from .options import METRICS, SEARCHES, FillOptions

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEMO_IMAGE = os.path.join(DATA, "demo.jpg")
DEMO_MASK = os.path.join(DATA, "demo_mask.png")  # its 256x256 centre
DEMO_OUTPUT = "npsynth_demo.png"
ALPHA = "alpha"  # --mask alpha: the hole is the photo's transparent pixels
EXPECTED_ERRORS = (MaskError, OSError, ValueError)  # bad input, unreadable or unwritable files


class CliError(Exception):
    """A problem with the command line's input, reported as one line."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m npsynth_ext.fill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", help="the photo to fill (any format Pillow reads), or a folder of photos")
    hole = p.add_mutually_exclusive_group()
    hole.add_argument("--mask", metavar="MASK|alpha",
                      help="mask image of IMAGE's size, hole where at least half-bright (>= 128 of 255); or "
                           "'alpha': the hole is IMAGE's pixels more than half transparent")
    hole.add_argument("--mask-dir", metavar="MASKS_DIR",
                      help="folder mode: each photo's mask is the file of the same name (before the extension)")
    hole.add_argument("--box", nargs=4, type=int, metavar=("X", "Y", "W", "H"), help="rectangular hole")
    p.add_argument("-o", "--output", help=f"where to write the result, its extension picks the format (PNG, JPEG, "
                                          f"TIFF, ...); folder mode: the output folder; --demo: {DEMO_OUTPUT}")
    p.add_argument("--quality", type=jpeg_quality, default=95, metavar="Q",
                   help="JPEG and WebP quality, 1..100 (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="folder mode: fill again photos whose output exists")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="folder mode on a Ray cluster (pip install npsynth_ext[ray]): without ADDRESS one started "
                        "on this machine for the run; 'auto' or ray://HOST:10001 an existing one. The workers "
                        "must see the folders under the same paths (docs/cluster.md)")
    p.add_argument("--ray-workers", type=positive, metavar="N",
                   help="with --ray: how many workers (default: as many as the cluster's CPUs, or GPUs with "
                        "--device cuda, hold)")
    p.add_argument("--ray-threads", type=positive, metavar="N",
                   help="with --ray: torch threads (and CPUs) of each worker (default 1)")
    p.add_argument("--demo", action="store_true", help="fill the bundled demo photo's 256x256 centre hole")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-steps", metavar="DIR",
                   help="also write each scale's pictures into DIR, a folder per frame: its start "
                        "(DIR/frame1/scale1_128_start.png), the optimisation's result (..._optimised.png, where "
                        "the level has iterations) and the scale's result (DIR/frame1/scale1_128.png), ...")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars, no 'wrote' line (folder mode still prints its summary line)")
    defaults = FillOptions()
    p.add_argument("--alpha", type=float, default=defaults.alpha, help="texture weight (default %(default)s)")
    p.add_argument("--beta", type=float, default=defaults.beta, help="smoothness weight (default %(default)s)")
    p.add_argument("--iters", type=int, nargs=3, default=list(defaults.iters), metavar=("N1", "N2", "N3"),
                   help="L-BFGS iterations at the coarsest, middle and finest level (a 512 frame's 128, 256 and "
                        "512 px); the extra levels of frames of 1024 px and more take the finest's "
                        "(default %(default)s)")
    p.add_argument("--metric", choices=METRICS, default=defaults.metric,
                   help="deep patch matching, cosine or l2 (default %(default)s)")
    p.add_argument("--search", choices=SEARCHES, default=defaults.search,
                   help="nearest-neighbour search when re-matching: patchmatch from the previous matches, or "
                        "exact every time (slower) (default %(default)s)")
    p.add_argument("--prior", choices=PRIOR_NAMES, default=defaults.content,
                   help="the first guess of the hole: patches (rebuilt from the photo's pixels, coarse to fine) or "
                        "classical (a smooth membrane) (default %(default)s)")
    p.add_argument("--pixel-rounds", type=int, default=defaults.pixel_rounds, metavar="N",
                   help="after each scale, rebuild the hole from the photo's own pixels in N rounds of pixel "
                        "PatchMatch and voting; 0 keeps the optimisation's pixels (default %(default)s)")
    p.add_argument("--no-blend", action="store_true",
                   help="keep the pixel step's last vote as voted, without the gradient-domain blend that hides "
                        "where copies meet")
    p.add_argument("--max-frame", type=int, default=defaults.max_frame, metavar="SIDE",
                   help="work on frames larger than SIDE px downscaled to SIDE (faster, softer; a multiple of "
                        "32, of 64 from 1024, of 128 from 2048); default: every frame at the photo's resolution")
    p.add_argument("--vgg-weights", help="a torchvision VGG-19 checkpoint instead of the bundled Caffe weights")
    p.add_argument("--vgg-precision", choices=vgg.PRECISIONS, default=defaults.vgg_precision,
                   help="the dtype of VGG's convolutions: auto picks bfloat16 on a CPU with AMX or AVX512-BF16 "
                        "(about twice as fast a fill), else float32 (default %(default)s)")
    p.add_argument("--content-weights", metavar="MODEL",
                   help="a content network trained with python -m npsynth_ext.train_content, as the content prior "
                        "instead of --prior")
    return p


def jpeg_quality(text):
    """--quality's value: an integer 1..100, as Pillow takes for JPEG and WebP."""
    if not (text.isdigit() and 1 <= int(text) <= 100):
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 100, got {text!r}")
    return int(text)


def positive(text):
    """A count of at least 1."""
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def load_photo(path):
    """The photo at `path` (images.read_photo), every failure as a one-line CliError naming the file."""
    from PIL import UnidentifiedImageError

    if not os.path.isfile(path):
        raise CliError(f"image not found: {path}")
    try:
        return read_photo(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise CliError(f"cannot read image {path}: {exc}") from None
    except ValueError as exc:  # a kind of image that is refused, with its reason
        raise CliError(f"{path}: {exc}") from None


def hole_of(photo, mask_path, box):
    """The checked hole of `photo`: from a mask file, from its alpha (mask_path == ALPHA), or a box."""
    if mask_path == ALPHA:
        hole = alpha_hole(photo)
    elif mask_path:
        hole = read_mask(mask_path, photo.rgb.shape[:2])
    else:
        hole = box_mask(photo.rgb.shape[1::-1], *box)
    return check_mask(hole, photo.rgb.shape[:2])


def check_output(photo, hole, path, opaque_hole):
    """Fail before any work if the result could not be written at `path`: a folder that is not there or
    not writable, an unknown extension, a format that would lose the photo's 16 bits or transparency."""
    writable_pixels(restore(photo, photo.rgb, hole, opaque_hole), photo.mode, path)
    check_writable(path)


def fill_photo(photo, hole, output, opts, quality, opaque_hole, timings=None, say=None, net=None):
    """Fill `photo`'s hole and write it at `output` in the photo's own kind (images.restore), atomically.
    `say`, if given, is told (a line each) of every frame that --max-frame has worked on downscaled; `net`:
    a loaded VGG network to reuse (pipeline.fill)."""
    if say:
        for line in downscale_notes(hole, opts.max_frame):
            say(line)
    result = pipeline.fill_u8(photo.rgb, hole, opts, timings, net=net)
    write_photo_atomically(photo, restore(photo, result, hole, opaque_hole), output, quality)


def downscale_notes(hole, max_frame):
    """A line for each of the hole's frames (masks.plan_frames) that max_frame makes the fill work on
    downscaled, hence softer than the photo around it."""
    frames = plan_frames(hole, max_frame)
    return [f"frame {number} of {len(frames)} is {frame.side} px, worked at {frame.work} px (--max-frame "
            f"{max_frame}): the fill will be softer than the photo" for number, frame in enumerate(frames, 1)
            if frame.work < frame.side]


def fill_options(args):
    """FillOptions from the arguments (it checks them all, the device and the VGG weights file included);
    --content-weights' network is loaded here, so a bad checkpoint is refused before any work."""
    content = load_content_net(args.content_weights, args.device) if args.content_weights else args.prior
    return FillOptions(alpha=args.alpha, beta=args.beta, iters=tuple(args.iters), metric=args.metric,
                       search=args.search, content=content, pixel_rounds=args.pixel_rounds,
                       pixel_blend=not args.no_blend, max_frame=args.max_frame, vgg_weights=args.vgg_weights,
                       vgg_precision=args.vgg_precision,
                       device=args.device, seed=args.seed, progress=not args.quiet, save_steps=args.save_steps)


def run(args):
    # Options first, then the inputs and the output path: every check before any real work.
    opts = fill_options(args)
    if args.ray is None and (args.ray_workers or args.ray_threads):
        raise CliError("--ray-workers and --ray-threads go with --ray")
    if args.image and (args.mask_dir or os.path.isdir(args.image)):
        return run_folder(args, opts)
    if args.ray:
        raise CliError("--ray fills folders: give PHOTOS_DIR with --mask-dir, --mask alpha or --box")
    if args.demo:
        if args.image or args.mask or args.box or args.mask_dir:
            raise CliError("--demo takes no IMAGE, --mask, --mask-dir or --box")
        image, mask, box, output = DEMO_IMAGE, DEMO_MASK, None, args.output or DEMO_OUTPUT
    else:
        if not args.image:
            raise CliError("give an IMAGE (or --demo)")
        if not (args.mask or args.box):
            raise CliError("give the hole with --mask MASK, --mask alpha or --box X Y W H")
        if not args.output:
            raise CliError("give the output path with -o OUT")
        image, mask, box, output = args.image, args.mask, args.box, args.output
    photo = load_photo(image)
    hole = hole_of(photo, mask, box)
    check_output(photo, hole, output, mask == ALPHA)
    start = time.perf_counter()
    timings = {}
    fill_photo(photo, hole, output, opts, args.quality, mask == ALPHA, timings, say=None if args.quiet else
               lambda line: print(f"npsynth_ext.fill: {line}", file=sys.stderr))
    if not args.quiet:
        split = ", ".join(f"{stage if isinstance(stage, str) else f'{stage}px'} {seconds:.1f} s"
                          for stage, seconds in timings.items())
        print(f"wrote {output}: {photo.rgb.shape[1]}x{photo.rgb.shape[0]}, {int(hole.sum())} hole pixels, "
              f"{time.perf_counter() - start:.1f} s ({split})")


# Folder mode.

def run_folder(args, opts):
    """Fill every photo of the folder args.image; returns the exit code (1 if any photo failed)."""
    from tqdm.auto import tqdm

    photos_dir, masks_dir, out_dir = args.image, args.mask_dir, args.output
    cluster = ray_cluster(args.ray)
    if args.mask and args.mask != ALPHA:
        raise CliError("folder mode: --mask takes only 'alpha'; give each photo's mask with --mask-dir")
    if not (masks_dir or args.mask or args.box):
        raise CliError("folder mode takes the holes from --mask-dir MASKS_DIR, --mask alpha or --box X Y W H")
    if not out_dir:
        raise CliError("give the output folder with -o OUT_DIR")
    masks = masks_by_stem(masks_dir) if masks_dir else None
    photos = image_files(photos_dir)
    if not photos:
        raise CliError(f"no image files in {photos_dir}")
    prepare_out_dir(out_dir, [photos_dir] + ([masks_dir] if masks_dir else []))
    if cluster:
        return cluster.fill_folder(args, photos, masks)
    net = vgg.load_texture_net(opts.vgg_weights, opts.device)  # once, for every photo
    opts.progress = False  # the one bar is the batch's
    outcomes = {"filled": 0, "skipped (exists)": 0, "failed": 0}
    bar = tqdm(photos, desc="photos", unit="photo", disable=args.quiet)
    for name in bar:
        bar.set_postfix_str(name)
        say = None if args.quiet else lambda line: bar.write(f"npsynth_ext.fill: {name}: {line}", file=sys.stderr)
        outcome, problem = fill_in_folder(name, args, opts, masks, say, net)
        outcomes[outcome] += 1
        if problem:
            bar.write(f"npsynth_ext.fill: {name}: {problem}", file=sys.stderr)
    bar.close()
    print(", ".join(f"{count} {outcome}" for outcome, count in outcomes.items()))
    return 1 if outcomes["failed"] else 0


def ray_cluster(address):
    """With --ray, the module that runs the folder on Ray, once it has checked that Ray is installed; None
    without (Ray is imported only here)."""
    if address is None:
        return None
    from . import cluster

    cluster.import_ray()
    return cluster


def fill_in_folder(name, args, opts, masks, say=None, net=None):
    """Fill one photo of the folder: ("filled" | "skipped (exists)" | "failed", the failure or None). A
    failure of any kind stays this photo's: the batch goes on. net: the loaded VGG network."""
    output = os.path.join(args.output, name)
    if os.path.exists(output) and not args.overwrite:
        return "skipped (exists)", None
    try:
        photo = load_photo(os.path.join(args.image, name))
        mask = args.mask if masks is None else mask_for(name, masks, args.mask_dir)
        hole = hole_of(photo, mask, args.box)
        check_output(photo, hole, output, mask == ALPHA)
        fill_photo(photo, hole, output, opts, args.quality, mask == ALPHA, say=say, net=net)
    except (CliError, *EXPECTED_ERRORS) as exc:
        return "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug or a resource error on one photo must not stop the rest
        return "failed", f"{type(exc).__name__}: {exc}"
    return "filled", None


def image_files(folder):
    """The names of the files in `folder` whose extension Pillow reads (not hidden ones, such as our
    temporary files), sorted."""
    from PIL import Image

    if os.path.isfile(folder):
        raise CliError(f"{folder} is a file, not a folder")
    if not os.path.isdir(folder):
        raise CliError(f"folder not found: {folder}")
    extensions = Image.registered_extensions()
    return sorted(n for n in os.listdir(folder) if not n.startswith(".") and os.path.isfile(os.path.join(folder, n))
                  and os.path.splitext(n)[1].lower() in extensions)


def masks_by_stem(folder):
    """{name without extension: [mask file names]} of the image files in `folder`."""
    stems = {}
    for name in image_files(folder):
        stems.setdefault(os.path.splitext(name)[0], []).append(name)
    return stems


def mask_for(photo_name, masks, masks_dir):
    """The path of the one mask whose stem is the photo's (case-sensitive), or CliError."""
    stem = os.path.splitext(photo_name)[0]
    found = masks.get(stem, [])
    if not found:
        raise CliError(f"no mask named {stem}.* in {masks_dir}")
    if len(found) > 1:
        raise CliError(f"several masks named {stem}.* in {masks_dir}: {', '.join(found)}")
    return os.path.join(masks_dir, found[0])


def prepare_out_dir(out_dir, input_dirs):
    """Create the output folder if needed; it must be writable and not one of the input folders (which
    exist by now): an output could then replace a photo or a mask."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CliError(f"output {out_dir} is a file, not a folder")
    if os.path.isdir(out_dir) and any(os.path.samefile(d, out_dir) for d in input_dirs):
        raise CliError(f"output folder {out_dir} is an input folder: give another one")
    os.makedirs(out_dir, exist_ok=True)
    check_writable(os.path.join(out_dir, "any_photo.png"))  # it checks the folder a file would go in


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_command("npsynth_ext.fill", run, args, (CliError, *EXPECTED_ERRORS),
                       "no output was left half-written")
