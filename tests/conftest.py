import pytest
import torch

import npsynth_ext as nx
from npsynth_ext import ops

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
EMULATED = pytest.mark.skipif(not nx.build_info()["cuda_emulation"],
                              reason="the CUDA emulator is not built (NPSYNTH_CUDA_EMULATION=1)")

# Every kernel test runs on each backend: the CUDA ones are skipped only when no GPU is visible, their
# emulated twins (the same CUDA kernels run by the host's CUDA emulator, on CPU tensors) only when the
# emulator is not built.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, CUDA]),
    pytest.param("cuda_emulated", id="cuda_emulated", marks=[pytest.mark.cuda_emulated, EMULATED]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """The device of the test's tensors; for cuda_emulated, "cpu" while the ops run the emulated kernels."""
    if request.param == "cuda_emulated":
        with ops.emulated_cuda():
            yield "cpu"
    else:
        yield request.param

