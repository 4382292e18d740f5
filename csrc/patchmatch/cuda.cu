// PatchMatch on CUDA: a warp per line of a pass (and per target at the start), its 32 lanes splitting each
// candidate's dot product over the channels of the position-major maps (consecutive lanes read consecutive
// channels, so the loads coalesce). The butterfly sum hands every lane the same total, so the lanes walk
// the line in lockstep through the same per-target steps (common/patchmatch_math.h) as the CPU.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <optional>

#include "common/patchmatch_math.h"
#include "common/op_checks.h"
#include "patchmatch/batch.h"
#include "cuda/launch.cuh"

namespace npsynth {
namespace {

constexpr int kWarp = 32;

// Sum over the warp by xor butterfly: each step adds the same two values in every lane pair, so all
// lanes end with bit-identical totals.
struct WarpSum {
  template <typename T>
  __device__ T operator()(T partial) const {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) partial += __shfl_xor_sync(0xffffffffu, partial, offset);
    return partial;
  }
};

unsigned int warp_grid(int64_t warps) { return grid_for(warps * kWarp); }

// Warp w of the grid handles items w, w + (number of warps), ...; every lane of a warp sees the same item.
#define NPS_WARP_STRIDE(i, n)                                                                  \
  for (int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x / kWarp)

template <typename T>
__global__ void patchmatch_start_kernel(PatchmatchBatch<T> g, PatchmatchShape s, const int64_t* init, int64_t n) {
  const int64_t nt = s.Ht * s.Wt;
  NPS_WARP_STRIDE(l, n) {
    const int64_t b = l / nt;
    NPS_KERNEL_ASSERT(g.n_valid[b] > 0, NPS_NO_VALID_SOURCE);
    pm_start<kWarp>(pm_item(g, s, b), s, init + b * nt, l % nt, threadIdx.x % kWarp, WarpSum{});
  }
}

template <typename T>
__global__ void patchmatch_pass_kernel(PatchmatchBatch<T> g, PatchmatchShape s, PatchmatchPass pass, int64_t lines,
                                       int64_t n) {
  NPS_WARP_STRIDE(line, n) {
    pm_walk_line<kWarp>(pm_item(g, s, line / lines), s, pass, line % lines, threadIdx.x % kWarp, WarpSum{});
  }
}

template <typename T>
__global__ void patchmatch_finish_kernel(PatchmatchBatch<T> g, PatchmatchShape s, int64_t n) {
  NPS_GRID_STRIDE(l, n) { pm_finish(g, s, l); }
}

std::tuple<at::Tensor, at::Tensor> patchmatch_cuda(const at::Tensor& target, const at::Tensor& source,
                                                   const at::Tensor& target_mask, const at::Tensor& source_valid,
                                                   int64_t patch_size, c10::string_view metric,
                                                   const std::optional<at::Tensor>& init_index, int64_t iters,
                                                   int64_t radius, int64_t seed) {
  check_patchmatch(target, source, target_mask, source_valid, patch_size, init_index, iters, radius);
  const gpu::DeviceGuard guard(target.device());
  // No host reads (the start kernel asserts a valid source): the fill re-matches inside its iterations.
  const PatchmatchShape s =
      patchmatch_shape(target, source, target_mask, patch_size, parse_metric(metric), radius, seed, false);
  PatchmatchTensors t(NPS_CUDA_OPS, target, source, target_mask, source_valid, patch_size, metric, init_index, s);
  const int64_t n = t.index.numel();
  if (n == 0) return {t.index, t.dist};
  const auto stream = gpu::current_stream();
  AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "patchmatch_cuda", [&] {
    const PatchmatchBatch<scalar_t> g = t.batch<scalar_t>();
    NPS_LAUNCH(patchmatch_start_kernel<scalar_t>, warp_grid(n), kBlock, stream)(g, s, t.start.data_ptr<int64_t>(), n);
    NPS_LAUNCH_CHECK();
    for_each_pass(t, s, iters, [&](PatchmatchPass pass, int64_t lines) {
      const int64_t n_lines = lines * target.size(0);
      NPS_LAUNCH(patchmatch_pass_kernel<scalar_t>, warp_grid(n_lines), kBlock, stream)(g, s, pass, lines, n_lines);
      NPS_LAUNCH_CHECK();
    });
    NPS_LAUNCH(patchmatch_finish_kernel<scalar_t>, grid_for(n), kBlock, stream)(g, s, n);
    NPS_LAUNCH_CHECK();
  });
  return {t.index, t.dist};
}

}  // namespace

NPS_CUDA_LIBRARY_IMPL(m) { m.impl("patchmatch", &patchmatch_cuda); }

}  // namespace npsynth
