"""On the CUDA path, texture_loss (forward and backward) and patchmatch check their data inside the
kernels (device-side asserts), so that the fill's iterations never wait for the device. A bad index or
an empty source set must still stop the op with the CPU path's message: under the emulator at once,
on a GPU at the next sync. A failed device assert leaves the CUDA context unusable, so on a GPU each
case runs in a fresh Python process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import npsynth_ext as nx
from npsynth_ext import ops
from conftest import CUDA, EMULATED

INDEX_MESSAGE = "index must lie in [0, Hs * Ws) wherever target_mask is set"
SOURCE_MESSAGE = "source_valid has no valid source patch"

# Each case builds its inputs on DEVICE and calls the native op the way the Python wrappers do. The
# wrappers add no data checks of their own, so the kernels' asserts are the only ones on the CUDA path.
SETUP = """
import torch
from npsynth_ext import ops
g = torch.Generator().manual_seed(0)
t, s = (torch.randn(1, 4, 9, 10, generator=g).to(DEVICE) for _ in range(2))
m = torch.zeros(1, 9, 10, dtype=torch.bool)
m[0, 3:6, 3:7] = True
v = ~m
index = torch.where(m, torch.zeros(1, 9, 10, dtype=torch.int64), torch.full((1, 9, 10), -1))
"""
# Each case: (the op's message, code that prepares a valid call, the one line that makes it bad, the
# call). Only the bad line differs from a call the op accepts.
CASES = {
    # An index one past the last source position, on one masked target only.
    "texture_loss": (INDEX_MESSAGE, "", "index[0, 4, 5] = 90",
                     'ops.native("texture_loss")(t, s, index.to(DEVICE), m.to(DEVICE), 3)'),
    "texture_loss_backward": (INDEX_MESSAGE, "grad = torch.ones((), device=DEVICE)", "index[0, 3, 3] = -1",
                              'ops.native("texture_loss_backward")(grad, t, s, index.to(DEVICE), m.to(DEVICE), 3)'),
    # The second batch item has no valid source at all.
    "patchmatch": (SOURCE_MESSAGE,
                   "t, s, m, v, index = (x.expand(2, *x.shape[1:]).contiguous() for x in (t, s, m, v, index))",
                   "v[1] = False",
                   'ops.native("patchmatch")(t, s, m.to(DEVICE), v.to(DEVICE), 3, "l2", index.to(DEVICE), 1, 0, 0)'),
}


def script(name, device, bad=True):
    """The case's code on `device`, with its bad line or without it."""
    _, prepare, bad_line, call = CASES[name]
    lines = [SETUP, prepare, bad_line if bad else "", call]
    return "\n".join(lines).replace("DEVICE", repr(device))


def run_case(name, device, bad=True):
    exec(script(name, device, bad), {})


@EMULATED
@pytest.mark.cuda_emulated
@pytest.mark.parametrize("name", sorted(CASES))
def test_emulated_kernel_asserts(name):
    with ops.emulated_cuda(), pytest.raises(RuntimeError) as err:
        run_case(name, "cpu")
    assert "device-side assert triggered (emulated CUDA)" in str(err.value)
    assert CASES[name][0] in str(err.value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_good_inputs_pass_the_same_calls(name):
    """Without its bad line, each case's call is accepted: the failures below come from that line."""
    run_case(name, "cpu", bad=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_kernels_raise_the_same_message(name):
    with pytest.raises(RuntimeError, match=r"\S") as err:
        run_case(name, "cpu")
    message = CASES[name][0]
    # The CPU check names the real bound where the CUDA assert can only name it symbolically.
    assert message.replace("Hs * Ws", "90") in str(err.value) or message in str(err.value)


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_kernel_asserts_stop_the_process(name):
    code = script(name, "cuda") + "\ntorch.cuda.synchronize()\nprint('NO ASSERT')\n"
    root = str(Path(nx.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "NO ASSERT" not in output, output[-2000:]
    assert "device-side assert triggered" in output, output[-2000:]
    assert CASES[name][0] in output, output[-2000:]
