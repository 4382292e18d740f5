"""Benchmark inputs at the paper's shapes: the VGG-19 feature maps of a 512x512 working frame with a 256x256
centre hole. Each factory builds its inputs once and returns the closures to time, so the timing covers the
op alone. Features are rectified Gaussian noise: exact search costs the same whatever the values are."""
import torch
import torch.nn.functional as F

import npsynth_ext as nx
from npsynth_ext import reference

# name: (channels, map side, hole side) -- relu3_1 is 1/4 of the frame, relu4_1 1/8.
SHAPES = {
    "relu3_1@512": (256, 128, 64),
    "relu4_1@512": (512, 64, 32),
}
IMPLS = {"ours": nx, "reference": reference}


def layer_inputs(shape, device="cpu", seed=0):
    """Features, target mask (every centre whose patch touches the hole) and source set (the rest)."""
    C, S, h = SHAPES[shape]
    g = torch.Generator().manual_seed(seed)
    fmap = torch.relu(torch.randn(C, S, S, generator=g)).to(device)
    hole = torch.zeros(S, S, dtype=torch.bool)
    o = (S - h) // 2
    hole[o:o + h, o:o + h] = True
    touched = F.max_pool2d(hole[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    return fmap, touched.to(device), (~touched).to(device)


def patch_nn_gflop(shape):
    """The multiply-adds of exact search, counted as the reference does them: every target patch against
    every valid source patch (2 * C * 9 flops each)."""
    C = SHAPES[shape][0]
    _, mask, valid = layer_inputs(shape)
    return 2 * int(mask.sum()) * int(valid.sum()) * C * 9 / 1e9


def patch_nn_call(impl, shape, device="cpu", metric="l2"):
    fmap, mask, valid = layer_inputs(shape, device)
    op = IMPLS[impl].patch_nn
    return lambda: op(fmap, fmap, mask, valid, 3, metric)


def texture_loss_call(impl, shape, device="cpu"):
    """Forward + backward of the texture loss, the matches precomputed (as in one L-BFGS step)."""
    fmap, mask, valid = layer_inputs(shape, device)
    index, _ = nx.patch_nn(fmap, fmap, mask, valid)
    op = IMPLS[impl].texture_loss
    source = fmap.clone()

    def step():
        x = fmap.detach().requires_grad_()
        op(x, source, index, mask, 3).backward()
        return x.grad

    return step
