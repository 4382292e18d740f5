"""pytest-benchmark suites: `pytest benchmarks/ --benchmark-only`. Each op against its reference at the
paper's shapes; compare.py prints the same comparison as one ratio table with peak memory."""
import pytest
import torch

from cases import SHAPES, patch_nn_call, texture_loss_call

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def timed(fn, device):
    if device == "cuda":
        def run():
            out = fn()
            torch.cuda.synchronize()
            return out
        return run
    return fn


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ours", "reference"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_patch_nn(benchmark, shape, impl, device):
    benchmark.group = f"patch_nn {shape} {device}"
    benchmark.pedantic(timed(patch_nn_call(impl, shape, device), device), rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ours", "reference"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_texture_loss_forward_backward(benchmark, shape, impl, device):
    benchmark.group = f"texture_loss fwd+bwd {shape} {device}"
    benchmark.pedantic(timed(texture_loss_call(impl, shape, device), device), rounds=5, warmup_rounds=1)
