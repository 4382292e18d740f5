"""Python wrappers of the native ops: input checks with clear messages, fake kernels for torch.compile, and
the autograd formula of texture_loss.

Every op takes features as [C, H, W] (masks [H, W]) or batched [B, C, H, W] (masks [B, H, W]). Checks here
look only at metadata, so they trace under torch.compile; the checks that need the data (at least one valid
source, index values in range) run in the C++ entry points on the CPU and as device-side asserts in the CUDA
kernels (an error at the next sync, "device-side assert triggered").

Inside `with emulated_cuda():` the wrappers call the CUDA kernels compiled for the host's CUDA emulator
(torch.ops.npsynth_emu.*, on CPU tensors) instead of torch.ops.npsynth.*: tests run the CUDA code so
without a GPU (a build with NPSYNTH_CUDA_EMULATION=1; see docs/cuda_emulation.md).
"""
import contextlib

import torch

from . import _native

METRICS = ("l2", "cosine")
NAMESPACES = ("npsynth", "npsynth_emu") if _native.compiled_config().get("cuda_emulation") == "1" else ("npsynth",)
_emulate_cuda = False  # set by emulated_cuda(); a module global, so torch.compile guards on it


@contextlib.contextmanager
def emulated_cuda():
    """Run the ops' CUDA kernels under the host's CUDA emulator (CPU tensors) while the block runs."""
    global _emulate_cuda
    if "npsynth_emu" not in NAMESPACES:
        raise RuntimeError("npsynth_ext was built without the CUDA emulator: rebuild with NPSYNTH_CUDA_EMULATION=1")
    before, _emulate_cuda = _emulate_cuda, True
    try:
        yield
    finally:
        _emulate_cuda = before


def native(name):
    """The native op `name`: torch.ops.npsynth.<name>, or its emulated CUDA twin inside emulated_cuda()."""
    return getattr(torch.ops.npsynth_emu if _emulate_cuda else torch.ops.npsynth, name)


def _check_features(name, t, rank):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
    if t.dim() != rank:
        raise ValueError(f"{name} must be [C, H, W] or [B, C, H, W] like target, got shape {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous; call .contiguous() on it first")


def _check_map(name, t, fmap, dtype):
    """A per-position tensor (mask or index) laid over feature map `fmap`."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {t.dtype}")
    want = fmap.shape[:-3] + fmap.shape[-2:]
    if t.shape != want:
        raise ValueError(f"{name} must have shape {tuple(want)} to match its feature map, got {tuple(t.shape)}")
    if t.device != fmap.device:
        raise ValueError(f"{name} is on {t.device} but its feature map is on {fmap.device}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous; call .contiguous() on it first")


def _check_pair(target, source, patch_size):
    if not isinstance(target, torch.Tensor) or target.dim() not in (3, 4):
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"target must be [C, H, W] or [B, C, H, W], got {shape}")
    _check_features("target", target, target.dim())
    _check_features("source", source, target.dim())
    if source.device != target.device:
        raise ValueError(f"source is on {source.device} but target is on {target.device}")
    if source.dtype != target.dtype:
        raise TypeError(f"source is {source.dtype} but target is {target.dtype}")
    if target.dim() == 4 and source.shape[0] != target.shape[0]:
        raise ValueError(f"batch sizes differ: target {target.shape[0]}, source {source.shape[0]}")
    if source.shape[-3] != target.shape[-3]:
        raise ValueError(f"channel counts differ: target {target.shape[-3]}, source {source.shape[-3]}")
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size <= 0 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be an odd positive int, got {patch_size!r}")


def _check_search(target, source, target_mask, source_valid, patch_size, metric):
    """The inputs patch_nn and patchmatch share."""
    _check_pair(target, source, patch_size)
    _check_map("target_mask", target_mask, target, torch.bool)
    _check_map("source_valid", source_valid, source, torch.bool)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _batched(*tensors):
    """Add a batch dim to unbatched inputs (features 3-D) so the native ops see one layout."""
    if tensors[0].dim() == 4:
        return tensors
    return tuple(t.unsqueeze(0) for t in tensors)


def patch_nn(target, source, target_mask, source_valid, patch_size=3, metric="l2"):
    """Exact nearest source patch for every target patch centred in target_mask.

    target [C, Ht, Wt] / source [C, Hs, Ws] (or batched [B, C, H, W]) float32/float64 features;
    target_mask [Ht, Wt] bool: which target centres to match; source_valid [Hs, Ws] bool: which source
    centres may be matched (at least one). Patches are patch_size x patch_size, zero-padded at borders.
    metric: "l2" (squared distance, the paper's) or "cosine" (1 - normalised cross-correlation).
    Returns (index, dist), shaped like target_mask: index is the flat source centre y * Ws + x (int64, -1
    where target_mask is false); dist the match's distance (0 where target_mask is false), computed
    exactly for the returned match. Among exactly equal patches any one may win: the search rounds its
    dot products differently per tile. Results repeat run to run on one device and thread count, and agree
    across CPU and CUDA up to ties. Non-finite features: every masked target still gets a valid source; NaN
    distances rank after all others, ties to the smaller index; dist is that match's (non-finite) distance
    (docs/cuda_emulation.md). Neither output is differentiable.
    """
    _check_search(target, source, target_mask, source_valid, patch_size, metric)
    batched = target.dim() == 4
    # Matching is not differentiable: detach so the outputs never claim a gradient path.
    t, s, m, v = _batched(target.detach(), source.detach(), target_mask, source_valid)
    index, dist = native("patch_nn")(t, s, m, v, patch_size, metric)
    return (index, dist) if batched else (index[0], dist[0])


# Defaults: from no start, 2 iterations come close to exact search on VGG features of photos; from the
# previous matches of slowly changing features, they stay exact. Random-search windows of 8, 4, 2 and 1
# positions do as well there as windows from the whole map down, at half the draws (docs/benchmarks.md,
# "Measurements behind the code's constants").
PATCHMATCH_ITERS = 2
PATCHMATCH_RADIUS = 8


def patchmatch(target, source, target_mask, source_valid, patch_size=3, metric="l2", init_index=None,
               iters=PATCHMATCH_ITERS, radius=PATCHMATCH_RADIUS, seed=0):
    """Approximate patch_nn by PatchMatch (Barnes et al. 2009): same inputs and outputs, but each match is
    a good one rather than the best, found in a small fraction of the time.

    init_index (int64, shaped like target_mask, optional) is a starting field, e.g. the previous result
    of a slowly changing target: entries that are not a valid source centre (-1, out of range, or not in
    source_valid) start from a random valid source instead. Without init_index the search starts from
    an exact search among cheap stand-ins of the patches: each position's channels projected onto the
    leading principal directions of the source's (so that a stand-in has at most 144 numbers), sources
    on a grid of stride 2. Each of the `iters` iterations then makes a row pass and a column pass over the
    target; every target tries its neighbours' matches shifted by one position (propagation) and random
    sources around its match in windows of radius `radius`, radius/2, ..., 1 (0: the whole source map).
    A match only ever improves on its start. The result depends only on the inputs and `seed`: the same
    on every run and for any number of threads. dist is the returned match's distance computed exactly,
    as in patch_nn. Neither output is differentiable.
    """
    _check_search(target, source, target_mask, source_valid, patch_size, metric)
    if init_index is not None:
        _check_map("init_index", init_index, target, torch.int64)
    for name, value in (("iters", iters), ("radius", radius)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    batched = target.dim() == 4
    t, s, m, v = _batched(target.detach(), source.detach(), target_mask, source_valid)
    if init_index is not None and not batched:
        init_index = init_index.unsqueeze(0)
    index, dist = native("patchmatch")(t, s, m, v, patch_size, metric, init_index, iters, radius, seed)
    return (index, dist) if batched else (index[0], dist[0])


def texture_loss(target, source, index, target_mask, patch_size=3):
    """E = mean over masked targets i of ||P_i - P_index(i)||^2 (a 0-dim tensor).

    target/source as for patch_nn; index (int64, shaped like target_mask) holds the matched source centre
    for every masked target, e.g. from patch_nn. Differentiable with respect to target only: the matches
    and source patches are held constant, as in the paper. An empty mask gives 0.
    """
    _check_pair(target, source, patch_size)
    _check_map("target_mask", target_mask, target, torch.bool)
    _check_map("index", index, target, torch.int64)
    t, s, i, m = _batched(target, source, index, target_mask)
    return native("texture_loss")(t, s, i, m, patch_size)


def _patch_nn_fake(target, source, target_mask, source_valid, patch_size, metric):
    shape = target_mask.shape
    return target.new_empty(shape, dtype=torch.int64), target.new_empty(shape)


def _patchmatch_fake(target, source, target_mask, source_valid, patch_size, metric, init_index, iters, radius, seed):
    return _patch_nn_fake(target, source, target_mask, source_valid, patch_size, metric)


def _texture_loss_fake(target, source, index, target_mask, patch_size):
    return target.new_empty(())


def _texture_loss_backward_fake(grad, target, source, index, target_mask, patch_size):
    return torch.empty_like(target)


def _texture_loss_setup_context(ctx, inputs, output):
    target, source, index, target_mask, patch_size = inputs
    ctx.save_for_backward(target, source, index, target_mask)
    ctx.patch_size = patch_size


def _texture_loss_backward_of(namespace):
    """texture_loss's autograd formula, calling the backward op of the forward's own namespace."""
    backward_op = getattr(torch.ops, namespace).texture_loss_backward

    def backward(ctx, grad):
        target, source, index, target_mask = ctx.saved_tensors
        grad_target = None
        if ctx.needs_input_grad[0]:
            grad_target = backward_op(grad, target, source, index, target_mask, ctx.patch_size)
        return grad_target, None, None, None, None

    return backward


for _ns in NAMESPACES:
    torch.library.register_fake(f"{_ns}::patch_nn")(_patch_nn_fake)
    torch.library.register_fake(f"{_ns}::patchmatch")(_patchmatch_fake)
    torch.library.register_fake(f"{_ns}::texture_loss")(_texture_loss_fake)
    torch.library.register_fake(f"{_ns}::texture_loss_backward")(_texture_loss_backward_fake)
    torch.library.register_autograd(f"{_ns}::texture_loss", _texture_loss_backward_of(_ns),
                                    setup_context=_texture_loss_setup_context)
