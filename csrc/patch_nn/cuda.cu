// Exact patch nearest neighbours on CUDA, fused and tiled.
//
// Each block scores a tile of 64 targets against tiles of 64 sources: the patch dot products accumulate in
// registers (4x4 per thread) from shared-memory chunks of 16 channels at one patch offset, read straight
// from the [C, H, W] maps with zero padding; no unfolded patch matrix, no score matrix in global memory.
// The shared epilogue (common/patch_math.h) turns each dot product into a distance and keeps a running
// argmin per target. When the targets alone give too few blocks to fill the GPU, blockIdx.y splits the
// sources, and a finalize kernel merges the splits with the same total order, so the result never depends
// on the launch shape. Finally each winner's distance is recomputed exactly, as on the CPU.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "common/patch_math.h"
#include "common/op_checks.h"
#include "cuda/launch.cuh"

namespace npsynth {
namespace {

constexpr int kTile = 64;                  // targets, and sources, per block tile
constexpr int kChunk = 16;                 // channels staged in shared memory per step
constexpr int kMicro = 4;                  // each thread owns a kMicro x kMicro block of scores
constexpr int kLanes = kTile / kMicro;     // threads along each tile side
constexpr int kTileThreads = kLanes * kLanes;
constexpr int64_t kOffMap = -(int64_t{1} << 40);  // centre of list slots past the end: reads only zeros

template <typename T>
__global__ void patch_norms_kernel(const T* fmap, const int64_t* centres, int64_t n, int64_t C, int64_t H,
                                   int64_t W, int radius, T* norm2) {
  NPS_GRID_STRIDE(i, n) {
    const int64_t p = centres[i];
    norm2[i] = patch_sqnorm(fmap, C, H, W, p / W, p % W, radius);
  }
}

struct NNShape {
  int64_t C, Ht, Wt, Hs, Ws;
  int radius, metric;
};

// Block (x, y): targets [x * kTile, +kTile) against source tiles [y * tiles_per_split, +tiles_per_split).
// Writes the block's best match for each of its targets to partial_{d,j}[y, i].
template <typename T>
__global__ void __launch_bounds__(kTileThreads)
    patch_nn_tile_kernel(const T* target, const T* source, const int64_t* t_centres, int64_t nt,
                         const int64_t* s_centres, int64_t ns, const T* t_norm2, const T* s_norm2, NNShape sh,
                         int64_t tiles_per_split, T* partial_d, int64_t* partial_j) {
  __shared__ T t_vals[kChunk][kTile];
  __shared__ T s_vals[kChunk][kTile];
  __shared__ int64_t t_y[kTile], t_x[kTile], s_y[kTile], s_x[kTile];
  __shared__ T red_d[kTile][kLanes];
  __shared__ int64_t red_j[kTile][kLanes];

  const int tid = threadIdx.x, lane_s = tid % kLanes, lane_t = tid / kLanes;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kTile;
  if (tid < kTile) {
    const int64_t i = i0 + tid;
    const int64_t p = i < nt ? t_centres[i] : -1;
    t_y[tid] = p < 0 ? kOffMap : p / sh.Wt;
    t_x[tid] = p < 0 ? kOffMap : p % sh.Wt;
  }
  T best_d[kMicro];
  int64_t best_j[kMicro];
  for (int u = 0; u < kMicro; ++u) best_d[u] = T(0), best_j[u] = -1;

  const int64_t n_tiles = (ns + kTile - 1) / kTile;
  const int64_t tile_end = min(n_tiles, (blockIdx.y + 1) * tiles_per_split);
  for (int64_t st = blockIdx.y * tiles_per_split; st < tile_end; ++st) {
    const int64_t j0 = st * kTile;
    __syncthreads();  // every thread is done with the previous tile's s_y/s_x
    if (tid < kTile) {
      const int64_t j = j0 + tid;
      const int64_t q = j < ns ? s_centres[j] : -1;
      s_y[tid] = q < 0 ? kOffMap : q / sh.Ws;
      s_x[tid] = q < 0 ? kOffMap : q % sh.Ws;
    }
    T acc[kMicro][kMicro] = {};
    for (int dy = -sh.radius; dy <= sh.radius; ++dy)
      for (int dx = -sh.radius; dx <= sh.radius; ++dx)
        for (int64_t c0 = 0; c0 < sh.C; c0 += kChunk) {
          __syncthreads();  // centres are loaded, and the previous chunk is consumed
          for (int e = tid; e < kChunk * kTile; e += kTileThreads) {
            const int k = e / kTile, i = e % kTile;
            const int64_t c = c0 + k;
            t_vals[k][i] = c < sh.C ? padded_at(target + c * sh.Ht * sh.Wt, sh.Ht, sh.Wt, t_y[i] + dy, t_x[i] + dx)
                                    : T(0);
            s_vals[k][i] = c < sh.C ? padded_at(source + c * sh.Hs * sh.Ws, sh.Hs, sh.Ws, s_y[i] + dy, s_x[i] + dx)
                                    : T(0);
          }
          __syncthreads();
#pragma unroll
          for (int k = 0; k < kChunk; ++k) {
            T a[kMicro], b[kMicro];
#pragma unroll
            for (int u = 0; u < kMicro; ++u) {
              a[u] = t_vals[k][lane_t * kMicro + u];
              b[u] = s_vals[k][lane_s * kMicro + u];
            }
#pragma unroll
            for (int u = 0; u < kMicro; ++u)
#pragma unroll
              for (int v = 0; v < kMicro; ++v) acc[u][v] += a[u] * b[v];
          }
        }
    for (int u = 0; u < kMicro; ++u) {
      const int64_t i = i0 + lane_t * kMicro + u;
      if (i >= nt) continue;
      for (int v = 0; v < kMicro; ++v) {
        const int64_t j = j0 + lane_s * kMicro + v;
        if (j >= ns) continue;
        const T d = patch_distance_from_dot(acc[u][v], t_norm2[i], s_norm2[j], sh.metric);
        nn_merge(d, s_centres[j], best_d[u], best_j[u]);
      }
    }
  }
  // Merge the kLanes threads that share each target row.
  for (int u = 0; u < kMicro; ++u) {
    red_d[lane_t * kMicro + u][lane_s] = best_d[u];
    red_j[lane_t * kMicro + u][lane_s] = best_j[u];
  }
  __syncthreads();
  if (tid < kTile && i0 + tid < nt) {
    T bd = T(0);
    int64_t bj = -1;
    for (int l = 0; l < kLanes; ++l) nn_merge(red_d[tid][l], red_j[tid][l], bd, bj);
    partial_d[blockIdx.y * nt + i0 + tid] = bd;
    partial_j[blockIdx.y * nt + i0 + tid] = bj;
  }
}

// Merge the source splits of each target and write its match with the exactly recomputed distance.
template <typename T>
__global__ void patch_nn_finalize_kernel(const T* target, const T* source, const int64_t* t_centres, int64_t nt,
                                         int64_t splits, const T* partial_d, const int64_t* partial_j, NNShape sh,
                                         int64_t* out_index, T* out_dist) {
  NPS_GRID_STRIDE(i, nt) {
    T bd = T(0);
    int64_t bj = -1;
    for (int64_t s = 0; s < splits; ++s) nn_merge(partial_d[s * nt + i], partial_j[s * nt + i], bd, bj);
    const int64_t p = t_centres[i];
    out_index[p] = bj;
    out_dist[p] = patch_pair_distance(PatchRef<T>{target, sh.Ht, sh.Wt, p / sh.Wt, p % sh.Wt},
                                      PatchRef<T>{source, sh.Hs, sh.Ws, bj / sh.Ws, bj % sh.Ws}, sh.C, sh.radius,
                                      sh.metric);
  }
}

template <typename T>
void patch_nn_one(const T* target, const T* source, const at::Tensor& t_mask, const at::Tensor& s_valid,
                  const NNShape& sh, int64_t* out_index, T* out_dist) {
  const at::Tensor t_centres = t_mask.flatten().nonzero().flatten();
  const int64_t nt = t_centres.numel();
  if (nt == 0) return;
  const at::Tensor s_centres = s_valid.flatten().nonzero().flatten();
  const int64_t ns = s_centres.numel();
  const auto opts = at::TensorOptions().device(t_mask.device()).dtype(c10::CppTypeToScalarType<T>::value);
  at::Tensor t_norm2 = at::empty({nt}, opts), s_norm2 = at::empty({ns}, opts);
  const auto stream = gpu::current_stream();
  NPS_LAUNCH(patch_norms_kernel<T>, grid_for(nt), kBlock, stream)(target, t_centres.data_ptr<int64_t>(), nt, sh.C,
                                                                  sh.Ht, sh.Wt, sh.radius, t_norm2.data_ptr<T>());
  NPS_LAUNCH_CHECK();
  NPS_LAUNCH(patch_norms_kernel<T>, grid_for(ns), kBlock, stream)(source, s_centres.data_ptr<int64_t>(), ns, sh.C,
                                                                  sh.Hs, sh.Ws, sh.radius, s_norm2.data_ptr<T>());
  NPS_LAUNCH_CHECK();

  // Enough blocks for ~4 per SM: split the source tiles when the target tiles alone are too few.
  const int64_t t_tiles = (nt + kTile - 1) / kTile, s_tiles = (ns + kTile - 1) / kTile;
  const int64_t sms = gpu::multiprocessor_count();
  const int64_t want = std::min<int64_t>(s_tiles, std::max<int64_t>(1, (4 * sms + t_tiles - 1) / t_tiles));
  const int64_t per_split = (s_tiles + want - 1) / want, splits = (s_tiles + per_split - 1) / per_split;
  at::Tensor partial_d = at::empty({splits, nt}, opts);
  at::Tensor partial_j = at::empty({splits, nt}, opts.dtype(at::kLong));
  const dim3 grid(static_cast<unsigned int>(t_tiles), static_cast<unsigned int>(splits));
  NPS_LAUNCH(patch_nn_tile_kernel<T>, grid, kTileThreads, stream)(
      target, source, t_centres.data_ptr<int64_t>(), nt, s_centres.data_ptr<int64_t>(), ns, t_norm2.data_ptr<T>(),
      s_norm2.data_ptr<T>(), sh, per_split, partial_d.data_ptr<T>(), partial_j.data_ptr<int64_t>());
  NPS_LAUNCH_CHECK();
  NPS_LAUNCH(patch_nn_finalize_kernel<T>, grid_for(nt), kBlock, stream)(
      target, source, t_centres.data_ptr<int64_t>(), nt, splits, partial_d.data_ptr<T>(),
      partial_j.data_ptr<int64_t>(), sh, out_index, out_dist);
  NPS_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> patch_nn_cuda(const at::Tensor& target, const at::Tensor& source,
                                                 const at::Tensor& target_mask, const at::Tensor& source_valid,
                                                 int64_t patch_size, c10::string_view metric) {
  check_patch_nn(target, source, target_mask, source_valid, patch_size);
  check_has_valid_source(source_valid);  // a host read, as nonzero() below: patch_nn runs once per scale
  const gpu::DeviceGuard guard(target.device());
  const NNShape sh{target.size(1), target.size(2), target.size(3), source.size(2), source.size(3),
                   static_cast<int>(patch_size / 2), parse_metric(metric)};
  const int64_t B = target.size(0);
  at::Tensor index = at::full({B, sh.Ht, sh.Wt}, -1, target.options().dtype(at::kLong));
  at::Tensor dist = at::zeros({B, sh.Ht, sh.Wt}, target.options());
  AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "patch_nn_cuda", [&] {
    for (int64_t b = 0; b < B; ++b) {
      patch_nn_one<scalar_t>(target.data_ptr<scalar_t>() + b * sh.C * sh.Ht * sh.Wt,
                             source.data_ptr<scalar_t>() + b * sh.C * sh.Hs * sh.Ws, target_mask[b], source_valid[b],
                             sh, index.data_ptr<int64_t>() + b * sh.Ht * sh.Wt,
                             dist.data_ptr<scalar_t>() + b * sh.Ht * sh.Wt);
    }
  });
  return {index, dist};
}

}  // namespace

NPS_CUDA_LIBRARY_IMPL(m) { m.impl("patch_nn", &patch_nn_cuda); }

}  // namespace npsynth
