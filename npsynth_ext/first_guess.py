"""The first guess: the hole filled at the coarsest level, before any optimisation.

FillOptions.content chooses it:
- "patches" (the default): the photo's own pixels, coarse to fine. A pyramid of the coarsest level's frame
  (patch_prior_sides: halving down to PRIOR_COARSEST px, but not below a side where the hole is thinner
  than fields.MIN_LEVEL_RADIUS) is filled from its smallest side up, by the pipeline's own level loop with
  no optimisation: the smallest side starts from the onion peel (onion.py: the hole grown inward ring by
  ring from copies of the pixels beside it; a membrane where that side is over onion.ONION_MAX_SIDE), and
  every side ends with the pixel step (classic PatchMatch inpainting, Barnes et al. 2009), its last vote
  blended in the gradient domain: copies of a brightness other than the hole edge's would leave a step
  there, which the first level's deep matching takes for an edge of the photo and the texture term then
  draws. So the guess carries the surroundings' structure and texture rather than a blur.
- "classical": a membrane (harmonic) fill, the smooth interpolation of the hole's whole boundary.
- a ContentNet (content_net.load_content_net): the paper's content network's prediction.
- any callable prior(rgb [3, n, n] 0..1, hole [n, n] bool, inside [n, n] bool) -> [3, n, n], the image
  with its hole filled (pixels outside the hole are ignored).
"""
import torch
import torch.nn.functional as F

from .content_net import ContentNet
from .fields import at_side, hole_radius, thick_enough
from .masks import downscale_mask
from .membrane import membrane

PATCHES = "patches"
CLASSICAL = "classical"
PRIOR_NAMES = (PATCHES, CLASSICAL)  # the priors a content option can name
# The pyramid's smallest side at the lowest: from 16 px the large boxes got repeated copies of whole
# objects (docs/quality.md).
PRIOR_COARSEST = 32
PRIOR_ROUNDS = 4  # match-and-vote rounds per side
# The first guess's votes keep the softer weighting that the levels had before their vote was made steeper
# (pixels.PIXEL_SHARPNESS, docs/quality.md); the guess only has to place structure for the optimisation.
PRIOR_SHARPNESS = 0.5


def patch_prior_sides(hole):
    """The sides of the patches prior's pyramid over a frame of hole's side n, smallest first: n, n/2, ...
    while the side stays even, at least PRIOR_COARSEST, and the hole at least MIN_LEVEL_RADIUS pixels from
    edge to middle (fields.thick_enough)."""
    n = hole.shape[-1]
    radius = hole_radius(hole)
    sides = [n]
    while sides[-1] // 2 >= PRIOR_COARSEST and sides[-1] % 2 == 0 and thick_enough(radius, sides[-1] // 2, n):
        sides.append(sides[-1] // 2)
    return sides[::-1]


def classical_prior(rgb, hole, inside):
    """Membrane fill of the hole from everything around it (padding included: it is reflected image)."""
    return membrane(rgb, ~hole)


def network_prior(net):
    """The prior of a trained content network: the frame is resized to the network's side, the network
    predicts the hole from the rest, and its prediction is resized back (only hole pixels are used)."""
    net.eval()

    def prior(rgb, hole, inside):
        n = rgb.shape[-1]
        side = net.config.size
        small = at_side(rgb, side)
        small_hole = downscale_mask(hole, side) if n != side else hole
        param = next(net.parameters())
        with torch.no_grad():
            out = net.complete(small[None].to(param), small_hole[None].to(param.device))[0].to(rgb)
        if n != side:
            out = F.interpolate(out[None], size=(n, n), mode="bilinear", align_corners=False)[0]
        return torch.where(hole, out, rgb)

    return prior


def get_prior(content):
    """The prior of a content option other than PATCHES: "classical", a loaded ContentNet, or a callable
    with the prior signature."""
    if isinstance(content, ContentNet):
        return network_prior(content)
    if callable(content):
        return content
    if content != CLASSICAL:
        raise ValueError(f"unknown content prior {content!r}; choose one of {list(PRIOR_NAMES)}, a ContentNet "
                         "(content_net.load_content_net) or a callable")
    return classical_prior
