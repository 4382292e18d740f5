#pragma once
// Everything the kernels of csrc/cuda/ take from the CUDA runtime, in one place, so that the same kernel
// source builds twice: by nvcc against the real runtime (here), and by the host compiler against the
// emulator (cuda_emulation/runtime.h, for a translation unit that defines NPS_CUDA_EMULATION; see
// docs/cuda_emulation.md). Include it after every other header: the emulator defines the CUDA built-ins
// (threadIdx, __shared__, ...) as macros.
//   NPS_LAUNCH(kernel, grid, block, stream)(args...)  launches kernel<<<grid, block, 0, stream>>>(args...)
//   NPS_LAUNCH_CHECK()                                checks the launch
//   NPS_KERNEL_ASSERT(cond, msg)                      a device-side assert (CUDA_KERNEL_ASSERT_MSG)
//   NPS_CUDA_OPS, NPS_CUDA_LIBRARY_IMPL(m)            the op namespace the kernels serve, and its registration
//   gpu::DeviceGuard, gpu::current_stream(), gpu::multiprocessor_count()
#if defined(NPS_CUDA_EMULATION)
#include "cuda_emulation/runtime.h"
#else
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace npsynth {
namespace cuda_runtime {
using DeviceGuard = c10::cuda::CUDAGuard;
inline cudaStream_t current_stream() { return at::cuda::getCurrentCUDAStream(); }
inline int64_t multiprocessor_count() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }
}  // namespace cuda_runtime
namespace gpu = cuda_runtime;
}  // namespace npsynth

#define NPS_LAUNCH(kernel, grid, block, stream) kernel<<<grid, block, 0, stream>>>
#define NPS_LAUNCH_CHECK() C10_CUDA_KERNEL_LAUNCH_CHECK()
#define NPS_KERNEL_ASSERT(cond, msg) CUDA_KERNEL_ASSERT_MSG(cond, msg)
#define NPS_CUDA_OPS "npsynth"
#define NPS_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(npsynth, CUDA, m)
#endif
