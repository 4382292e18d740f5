"""npsynth_ext: multi-scale neural patch synthesis inpainting with fused C++/CUDA patch ops.

Ops (each also under torch.ops.npsynth.*): patch_nn (exact patch nearest neighbours) and texture_loss
(the patch-matching texture energy, with a fused backward). Pure-PyTorch oracles live in
npsynth_ext.reference. build_info() says what the installed binary was compiled with.
"""
from .build import build_info
from .ops import METRICS, patch_nn, texture_loss

__all__ = ["METRICS", "build_info", "patch_nn", "texture_loss"]
__version__ = "0.1.0"
