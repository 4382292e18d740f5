"""pytest-benchmark suites: `pytest benchmarks/ --benchmark-only`. Each op against its reference at the
paper's shapes; compare.py prints the same comparison as one ratio table with peak memory."""
import pytest
import torch

from cases import SHAPES, patch_nn_call, search_calls, texture_loss_call

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def timed(fn, device):
    if device == "cuda":
        def run():
            out = fn()
            torch.cuda.synchronize()
            return out
        return run
    return fn


# name: (factory of the timed call, rounds)
OPS = {"patch_nn": (patch_nn_call, 3), "texture_loss fwd+bwd": (texture_loss_call, 5)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ours", "reference"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("op", list(OPS))
def test_op(benchmark, op, shape, impl, device):
    factory, rounds = OPS[op]
    benchmark.group = f"{op} {shape} {device}"
    benchmark.pedantic(timed(factory(impl, shape, device), device), rounds=rounds, warmup_rounds=1)


@pytest.mark.parametrize("search", ["patch_nn", "patchmatch cold", "patchmatch warm"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_search(benchmark, search, shape):
    """Exact search against PatchMatch on the demo photo's VGG features (CPU)."""
    fn, _ = search_calls(shape)[search]
    benchmark.group = f"search {shape}"
    benchmark.pedantic(fn, rounds=3 if search == "patch_nn" else 10, warmup_rounds=1)


@pytest.mark.parametrize("part", ["whole", "crop"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("side", [128, 256])
def test_vgg_window(benchmark, side, precision, part):
    """One evaluation of the optimisation's VGG: forward and backward to relu4_1 over a frame of the coarse
    levels' sides, in each dtype of FillOptions.vgg_precision (bfloat16 is fast only where
    vgg.has_fast_bfloat16 says so): the whole frame, or cut to what the texture term reads of a centre
    hole of half the frame's side (vgg.TextureNet.crop_for), as a 512 fill's 128 and 256 levels do."""
    from npsynth_ext.optimise import PATCH_SIZE
    from npsynth_ext.vgg import load_texture_net

    net = load_texture_net()
    x = torch.rand(1, 3, side, side, requires_grad=True)
    dtype = getattr(torch, precision)
    crop = None
    if part == "crop":
        # a target patch reads the hole's cells grown by two patch reaches (targets touch the hole)
        boxes = {}
        for name, stride in (("relu3_1", 4), ("relu4_1", 8)):
            cells = side // stride
            lo, hi = max(0, cells // 4 - 2 * (PATCH_SIZE // 2)), min(cells, 3 * cells // 4 + 2 * (PATCH_SIZE // 2))
            boxes[name] = (lo, hi, lo, hi)
        crop = net.crop_for(boxes, side)

    def once():
        sum(f.square().mean() for f in net(x, dtype, crop).values()).backward()

    benchmark.group = f"vgg window {side}"
    benchmark.pedantic(once, rounds=5, warmup_rounds=1)
