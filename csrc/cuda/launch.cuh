#pragma once
// Launch helpers shared by the CUDA kernels: grid-stride loops with a capped grid, launched on the current
// stream of the tensors' device (gpu::current_stream()), checked right after the launch. Include it after
// every other header: it brings in cuda/backend.cuh.
#include <algorithm>
#include <cstdint>

#include "cuda/backend.cuh"

namespace npsynth {

constexpr int kBlock = 256;

inline unsigned int grid_for(int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535)));
}

#define NPS_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

}  // namespace npsynth
