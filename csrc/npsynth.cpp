// Every op's schema, in one place. Backends (csrc/<op>/cpu.cpp and cuda.cu) only add TORCH_LIBRARY_IMPL
// blocks; importing the empty Python module npsynth_ext._C loads this library and so runs the registrations. A build with
// NPSYNTH_CUDA_EMULATION=1 defines the same ops a second time as npsynth_emu::*, whose CPU kernels are
// the CUDA kernels run by the emulator (csrc/cuda_emulation/).
#include <Python.h>
#include <torch/library.h>

#include <string>

#ifndef NPS_TORCH_VERSION
#define NPS_TORCH_VERSION "unknown"
#endif
#ifndef NPS_CUDA_ARCH_LIST
#define NPS_CUDA_ARCH_LIST ""
#endif

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "npsynth_ext native ops (see torch.ops.npsynth)", -1,
                               nullptr};
  return PyModule_Create(&module);
}

namespace {

// What this binary was compiled with, as "key=value" lines; npsynth_ext.build_info() parses it.
std::string build_info() {
  std::string info;
#ifdef NPS_WITH_CUDA
  info += "cuda=1\n";
#else
  info += "cuda=0\n";
#endif
#ifdef NPS_WITH_CUDA_EMULATION
  info += "cuda_emulation=1\n";
#else
  info += "cuda_emulation=0\n";
#endif
  info += std::string("cuda_arch_list=") + NPS_CUDA_ARCH_LIST + "\n";
  info += std::string("torch_version=") + NPS_TORCH_VERSION + "\n";
#ifdef _OPENMP
  info += "openmp=" + std::to_string(_OPENMP) + "\n";
#else
  info += "openmp=0\n";
#endif
  return info;
}

// The ops' schemas, for the npsynth library and its emulated twin.
void define_ops(torch::Library& m) {
  // Exact nearest source patch for every target patch centred in target_mask. index: flat source centre
  // (y * Ws + x), -1 where target_mask is false; dist: that match's distance, 0 where target_mask is false.
  m.def(
      "patch_nn(Tensor target, Tensor source, Tensor target_mask, Tensor source_valid, int patch_size, "
      "str metric) -> (Tensor index, Tensor dist)");
  // Approximate patch_nn by PatchMatch: same outputs and contract, except that each match is a good one
  // rather than the best. init_index (shaped like target_mask; entries that are not a valid source centre
  // are ignored) seeds the field and random valid sources fill the rest; without init_index the field
  // starts from an exact search among low-dimensional stand-ins of the patches (csrc/patchmatch/start.h).
  // Then `iters` iterations of a row pass and a column pass of propagation and random search in windows
  // of radius, radius/2, ..., 1 source positions (radius 0: the whole source map). The result depends
  // only on the inputs and seed.
  m.def(
      "patchmatch(Tensor target, Tensor source, Tensor target_mask, Tensor source_valid, int patch_size, "
      "str metric, Tensor? init_index, int iters, int radius, int seed) -> (Tensor index, Tensor dist)");
  // mean over masked targets of ||P_i - P_index(i)||^2 (a 0-dim tensor); gradient only to target.
  m.def("texture_loss(Tensor target, Tensor source, Tensor index, Tensor target_mask, int patch_size) -> Tensor");
  // d texture_loss / d target, given the upstream gradient (0-dim) of the loss.
  m.def(
      "texture_loss_backward(Tensor grad, Tensor target, Tensor source, Tensor index, Tensor target_mask, "
      "int patch_size) -> Tensor");
}

}  // namespace

TORCH_LIBRARY(npsynth, m) {
  define_ops(m);
  m.def("build_info() -> str", &build_info);
}

#ifdef NPS_WITH_CUDA_EMULATION
TORCH_LIBRARY(npsynth_emu, m) { define_ops(m); }
#endif
