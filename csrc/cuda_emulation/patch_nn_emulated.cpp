// csrc/patch_nn/cuda.cu compiled by the host compiler against the CUDA emulator: registers
// torch.ops.npsynth_emu.* kernels for CPU tensors (built with NPSYNTH_CUDA_EMULATION=1).
#define NPS_CUDA_EMULATION 1
#include "patch_nn/cuda.cu"
