"""What the installed native extension was compiled with."""
import torch

from . import _native  # loads the library: registers torch.ops.npsynth.*

OPS = ("patch_nn", "patchmatch", "texture_loss", "texture_loss_backward")


def build_info() -> dict:
    """The compile-time configuration of npsynth_ext._C, read from the binary itself.

    cuda: whether the CUDA sources were compiled in; cuda_arch_list: the arches they target;
    cuda_kernels: the ops that have a CUDA kernel registered; cuda_emulation: whether the CUDA kernels
    were also compiled for the host's CUDA emulator (NPSYNTH_CUDA_EMULATION=1, a test-only build; then
    emulated_kernels lists the ops of torch.ops.npsynth_emu.*); torch_version: the torch it was built
    against (torch_runtime: the one running now); openmp: whether the CPU kernels use OpenMP.
    """
    raw = _native.compiled_config()
    emulation = raw.get("cuda_emulation") == "1"
    return {
        "cuda": raw["cuda"] == "1",
        "cuda_arch_list": raw["cuda_arch_list"],
        "cuda_kernels": [op for op in OPS if torch._C._dispatch_has_kernel_for_dispatch_key(f"npsynth::{op}", "CUDA")],
        "cpu_kernels": [op for op in OPS if torch._C._dispatch_has_kernel_for_dispatch_key(f"npsynth::{op}", "CPU")],
        "cuda_emulation": emulation,
        "emulated_kernels": [op for op in OPS if emulation
                             and torch._C._dispatch_has_kernel_for_dispatch_key(f"npsynth_emu::{op}", "CPU")],
        "openmp": raw["openmp"] != "0",
        "openmp_version": raw["openmp"],
        "torch_version": raw["torch_version"],
        "torch_runtime": torch.__version__,
        "gpu_available": torch.cuda.is_available(),
    }
