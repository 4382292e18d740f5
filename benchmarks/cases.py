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


def photo_layer_inputs(shape, device="cpu"):
    """VGG-19 features of the demo photo (512x512) at the layer of `shape`, its 256x256 hole's targets and
    sources. PatchMatch needs real features: its propagation relies on neighbouring patches having
    neighbouring matches, which noise does not have."""
    import numpy as np
    from PIL import Image

    from npsynth_ext.fill_command import DEMO_IMAGE
    from npsynth_ext.vgg import load_texture_net

    layer = shape.split("@")[0]
    _, S, h = SHAPES[shape]
    rgb = torch.from_numpy(np.asarray(Image.open(DEMO_IMAGE).convert("RGB")).copy()).permute(2, 0, 1)
    with torch.no_grad():
        fmap = load_texture_net()(rgb[None].float() / 255)[layer][0].contiguous()
    hole = torch.zeros(S, S, dtype=torch.bool)
    o = (S - h) // 2
    hole[o:o + h, o:o + h] = True
    touched = F.max_pool2d(hole[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    valid = F.max_pool2d(touched[None, None].float(), 3, stride=1, padding=1)[0, 0] == 0
    return fmap.to(device), touched.to(device), valid.to(device)


def search_calls(shape, device="cpu", metric="l2", warm_iters=2):
    """{name: (closure, its field's mean distance over the exact one)} for one layer of the demo photo:
    exact patch_nn; PatchMatch with no start and its defaults ("cold": the stand-in search, then its
    iterations); and PatchMatch as the pipeline runs it between L-BFGS steps ("warm"): features moved a
    little (5% noise), started from the exact matches of the unmoved ones, `warm_iters` iterations with
    random search from the whole map down."""
    fmap, mask, valid = photo_layer_inputs(shape, device)
    g = torch.Generator().manual_seed(1)
    moved = (fmap + 0.05 * fmap.std() * torch.randn(fmap.shape, generator=g).to(device)).relu()
    exact_index, exact = nx.patch_nn(fmap, fmap, mask, valid, 3, metric)
    _, moved_exact = nx.patch_nn(moved, fmap, mask, valid, 3, metric)
    calls = {
        "patch_nn": (lambda: nx.patch_nn(fmap, fmap, mask, valid, 3, metric), exact),
        "patchmatch cold": (lambda: nx.patchmatch(fmap, fmap, mask, valid, 3, metric), exact),
        "patchmatch warm": (lambda: nx.patchmatch(moved, fmap, mask, valid, 3, metric, init_index=exact_index,
                                                  iters=warm_iters, radius=0), moved_exact),
    }
    return {name: (fn, lambda fn=fn, base=base: (fn()[1][mask].mean() / base[mask].mean()).item())
            for name, (fn, base) in calls.items()}
