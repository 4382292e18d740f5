"""What the installed binary says about itself (build_info) agrees with what is really registered."""
import os

import pytest
import torch

import npsynth_ext as nx

OPS = {"patch_nn", "patchmatch", "texture_loss", "texture_loss_backward"}


def test_build_info_reports_the_registered_kernels():
    info = nx.build_info()
    assert set(info["cpu_kernels"]) == OPS
    assert info["openmp"], "the CPU kernels were compiled without OpenMP"
    assert info["torch_version"].split("+")[0] == torch.__version__.split("+")[0], (
        f"built against torch {info['torch_version']} but running {torch.__version__}: rebuild the package")
    if info["cuda"]:
        assert set(info["cuda_kernels"]) == OPS and info["cuda_arch_list"]
    else:
        assert info["cuda_kernels"] == []
    assert set(info["emulated_kernels"]) == (OPS if info["cuda_emulation"] else set())


def test_cuda_build_when_required():
    """CI sets NPSYNTH_EXPECT_CUDA=1: there a build without the CUDA kernels is a failure, GPU or not."""
    if os.environ.get("NPSYNTH_EXPECT_CUDA") != "1":
        pytest.skip("NPSYNTH_EXPECT_CUDA is not set")
    info = nx.build_info()
    assert info["cuda"] and set(info["cuda_kernels"]) == OPS, info


def test_cuda_emulation_when_required():
    """CI sets NPSYNTH_EXPECT_CUDA_EMULATION=1: there the emulated CUDA kernels must be built, or the
    cuda_emulated tests would all skip."""
    if os.environ.get("NPSYNTH_EXPECT_CUDA_EMULATION") != "1":
        pytest.skip("NPSYNTH_EXPECT_CUDA_EMULATION is not set")
    info = nx.build_info()
    assert info["cuda_emulation"] and set(info["emulated_kernels"]) == OPS, info


def test_extension_code_formats_no_ostream():
    """A std::ostringstream in extension code segfaults on torch 2.11 built with gcc 13.3 (Ubuntu 24.04),
    so a failed check would crash instead of raising: the ops' checks go through NPS_CHECK, which joins
    strings, and nothing else in the ops' sources streams text. (The CUDA emulator, built for CI only,
    is not bound by this.)"""
    from pathlib import Path
    csrc = Path(__file__).resolve().parent.parent / "csrc"
    offenders = []
    for path in sorted(csrc.rglob("*")):
        if path.suffix not in {".h", ".cpp", ".cu", ".cuh"} or "cuda_emulation" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//")[0]
            streams = any(s in code for s in ("ostringstream", "c10::str(", "std::cout", "std::cerr", "TORCH_WARN"))
            checks = "TORCH_CHECK" in code and not code.strip().startswith("TORCH_CHECK(false, nps_check_message_")
            if streams or checks:
                offenders.append(f"{path.relative_to(csrc)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
