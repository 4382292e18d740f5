"""The one place the server calls the package's fill: the options a client may set (and how their form
values are read), the VGG network loaded once, and a fill of 8-bit RGB pixels with progress and cancel."""
import npsynth_ext
from npsynth_ext import vgg
from npsynth_ext.first_guess import PATCHES, PRIOR_NAMES


def _integers(count):
    def parse(text):
        values = [int(v) for v in text.replace(",", " ").split()]
        if len(values) != count:
            raise ValueError(f"give {count} integers, separated by spaces or commas")
        return tuple(values)
    return parse


def _boolean(text):
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError("give true or false")


# FillOptions fields a client may set, each with the parser of its form value and what it means (for the
# OpenAPI docs and docs/api.md). Left out on purpose: paths on the server's disk (vgg_weights, save_steps),
# a loaded content network, the device and VGG's precision (the server's own: vgg_precision stays "auto")
# and the progress bars.
OPTIONS = {
    "seed": (int, "seeds the fill's random choices (integer)"),
    "iters": (_integers(3), "L-BFGS iterations at the coarsest, middle and finest level, e.g. '100 40 0'"),
    "alpha": (float, "texture weight"),
    "beta": (float, "smoothness weight"),
    "metric": (str, "deep patch matching of the texture term: 'cosine' or 'l2'"),
    "search": (str, "'patchmatch' or 'exact' nearest-neighbour search at re-matches"),
    "pixel_rounds": (int, "rounds of the pixel step per level; 0 keeps the optimisation's pixels"),
    "pixel_blend": (_boolean, "blend the pixel step's vote in the gradient domain (true or false)"),
    "max_frame": (int, "work larger frames downscaled to this side (faster, softer)"),
    "content": (str, "the first guess: 'patches' or 'classical'"),
}


def parse_options(form_values):
    """{name: text} of option form fields as FillOptions keyword arguments, validated by FillOptions
    itself. Raises ValueError naming the field for an unknown option or a bad value."""
    unknown = sorted(set(form_values) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                         f"known: {', '.join(OPTIONS)}")
    options = {}
    for name, text in form_values.items():
        try:
            options[name] = OPTIONS[name][0](text)
        except ValueError as exc:
            raise ValueError(f"option {name}={text!r}: {exc}") from None
    if options.get("content", PATCHES) not in PRIOR_NAMES:
        raise ValueError(f"option content={options['content']!r}: give {' or '.join(map(repr, PRIOR_NAMES))}")
    try:
        npsynth_ext.FillOptions(**options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"options: {exc}") from None
    return options


class Engine:
    """A device and the VGG network loaded on it once; fill() runs one fill there."""

    def __init__(self, device="cpu", net=None):
        self.device = device
        self.net = net or vgg.load_texture_net(weights=None, device=device)

    def fill(self, rgb, hole, options, on_progress):
        """(H, W, 3) uint8 `rgb` with bool `hole` filled (outside it unchanged); on_progress(fraction,
        label) is called before the first level and after each; an exception it raises stops the fill."""
        return npsynth_ext.fill(rgb, hole, net=self.net, on_progress=on_progress, progress=False,
                                device=self.device, **options)
