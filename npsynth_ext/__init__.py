"""npsynth_ext: multi-scale neural patch synthesis inpainting with fused C++/CUDA patch ops.

fill(image, mask, **options) fills the hole of a photo (options: FillOptions; the steps: pipeline.py); the
CLI is `python -m npsynth_ext.fill`.

Ops (each also under torch.ops.npsynth.*): patch_nn (exact patch nearest neighbours), patchmatch (their
approximation by PatchMatch) and texture_loss (the patch-matching texture energy, with a fused
backward). Pure-PyTorch oracles live in npsynth_ext.reference. build_info() says what the installed
binary was compiled with.
"""
from .build import build_info
from .ops import METRICS, patch_nn, patchmatch, texture_loss
from .options import FillOptions
from .pipeline import fill

__all__ = ["METRICS", "FillOptions", "build_info", "fill", "patch_nn", "patchmatch", "texture_loss"]
__version__ = "0.1.0"
