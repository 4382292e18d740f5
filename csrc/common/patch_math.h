#pragma once
// Per-element patch math shared by the CPU and CUDA kernels of patch_nn and texture_loss.
//
// Conventions (every op, every backend):
//  * A feature map is a [C, H, W] block of a contiguous tensor; patches are k x k with radius r = k / 2,
//    centred on (y, x), and read zeros outside the map (zero padding).
//  * A source match is stored as its flat centre index q = y * W + x in the source map.
#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace npsynth {

enum PatchMetric : int {
  kMetricL2 = 0,      // squared Euclidean distance (the paper's)
  kMetricCosine = 1,  // 1 - normalised cross-correlation (the authors' released code)
};

// Below this, a patch-norm product counts as zero: a zero patch then correlates with nothing (cos = 0)
// instead of dividing by zero.
constexpr double kCosineEps = 1e-12;

template <typename T>
NPS_HOST_DEVICE inline T padded_at(const T* plane, int64_t H, int64_t W, int64_t y, int64_t x) {
  return (y >= 0 && y < H && x >= 0 && x < W) ? plane[y * W + x] : T(0);
}

// Distance of two patches given their dot product and squared norms: the epilogue of the tiled search,
// where the dot products come out of a GEMM (CPU) or a shared-memory tile (CUDA).
template <typename T>
NPS_HOST_DEVICE NPS_INLINED T patch_distance_from_dot(T dot, T tn2, T sn2, int metric) {
  if (metric == kMetricL2) {
    const T d = tn2 + sn2 - T(2) * dot;
    return d < T(0) ? T(0) : d;  // cancellation can dip below zero for near-identical patches; NaN stays NaN
  }
  const T denom = sqrt(tn2) * sqrt(sn2);
  return T(1) - dot / (denom > T(kCosineEps) ? denom : T(kCosineEps));
}

// A strict total order on candidate matches: the smaller distance wins, NaN ranks after every number
// (+inf included), and ties (two NaNs too) go to the smaller source index. So merging partial results in
// any order (threads, source splits, backends) returns the same match for the same computed distances,
// and with non-finite inputs every masked target still gets a valid source: the best finite one if any,
// else the first at +inf, else the first valid source. (Patches that are equal in exact arithmetic may
// still get distances that differ in the last bit from the tiled dot products, so the contract does not
// promise which of them wins.) No match yet (best_j < 0) always loses.
template <typename T>
NPS_HOST_DEVICE NPS_INLINED bool nn_better(T d, int64_t j, T best_d, int64_t best_j) {
  if (best_j < 0) return true;
  const bool d_nan = d != d, best_nan = best_d != best_d;
  if (d_nan || best_nan) return best_nan && (!d_nan || j < best_j);
  return d < best_d || (d == best_d && j < best_j);
}

// Squared norm of the patch of a [C, H, W] map centred on (y, x).
template <typename T>
NPS_HOST_DEVICE inline T patch_sqnorm(const T* fmap, int64_t C, int64_t H, int64_t W, int64_t y, int64_t x,
                                      int radius) {
  T acc = 0;
  for (int64_t c = 0; c < C; ++c) {
    const T* plane = fmap + c * H * W;
    for (int dy = -radius; dy <= radius; ++dy)
      for (int dx = -radius; dx <= radius; ++dx) {
        const T v = padded_at(plane, H, W, y + dy, x + dx);
        acc += v * v;
      }
  }
  return acc;
}

// Where a patch lives: its map, the map's shape, the patch centre, and the layout: element (c, y, x) is
// fmap[c * cstride + (y * W + x) * pstride]. The default is channel-major [C, H, W]; position-major
// copies ([H * W, C], one row of channels per position) set cstride = 1, pstride = C.
template <typename T>
struct PatchRef {
  const T* fmap;
  int64_t H, W, y, x;
  int64_t cstride = H * W, pstride = 1;

  // Channel 0 of the tap at offset (dy, dx) from the centre, or nullptr off the map (zero padding).
  NPS_HOST_DEVICE const T* tap(int dy, int dx) const {
    const int64_t ty = y + dy, tx = x + dx;
    return (ty >= 0 && ty < H && tx >= 0 && tx < W) ? fmap + (ty * W + tx) * pstride : nullptr;
  }
};

// Exact distance between a target and a source patch, computed directly (no cancellation): the value
// patch_nn and patchmatch return for a match, and, for l2, the per-patch term of texture_loss.
template <typename T>
NPS_HOST_DEVICE inline T patch_pair_distance(PatchRef<T> t, PatchRef<T> s, int64_t C, int radius, int metric) {
  T ssd = 0, dot = 0, tn2 = 0, sn2 = 0;
  for (int dy = -radius; dy <= radius; ++dy)
    for (int dx = -radius; dx <= radius; ++dx) {
      const T* ta = t.tap(dy, dx);
      const T* sa = s.tap(dy, dx);
      for (int64_t c = 0; c < C; ++c) {
        const T a = ta ? ta[c * t.cstride] : T(0);
        const T b = sa ? sa[c * s.cstride] : T(0);
        ssd += (a - b) * (a - b);
        dot += a * b;
        tn2 += a * a;
        sn2 += b * b;
      }
    }
  return metric == kMetricL2 ? ssd : patch_distance_from_dot(dot, tn2, sn2, metric);
}

// Keep (d, j) as the best match so far if it beats it; j < 0 means "no candidate" and never wins.
template <typename T>
NPS_HOST_DEVICE NPS_INLINED void nn_merge(T d, int64_t j, T& best_d, int64_t& best_j) {
  if (j >= 0 && nn_better(d, j, best_d, best_j)) best_d = d, best_j = j;
}

// The inputs of texture_loss for a batch: [B, C, Ht, Wt] target, [B, C, Hs, Ws] source, and per target
// position its mask bit, its matched source centre q, and that centre's row and column (q / Ws, q % Ws),
// found once per call (texture_loss/batch.h) so the per-element math below does not divide by Ws for
// every element and neighbour.
template <typename T>
struct TextureBatch {
  const T* target;
  const T* source;
  const bool* t_mask;
  const int64_t* index;
  const int64_t* match_y;
  const int64_t* match_x;
  int64_t C, Ht, Wt, Hs, Ws;
  int radius;
};

// Whether target position l = flat (b, y, x) is off the mask or matched to a centre of the source map.
template <typename T>
NPS_HOST_DEVICE inline bool texture_index_ok(const TextureBatch<T>& g, int64_t l) {
  return !g.t_mask[l] || (g.index[l] >= 0 && g.index[l] < g.Hs * g.Ws);
}

// ||P_i - P_nn(i)||^2 for target position l = flat (b, y, x); zero off the mask.
template <typename T>
NPS_HOST_DEVICE inline T texture_term_at(const TextureBatch<T>& g, int64_t l) {
  if (!g.t_mask[l]) return T(0);
  const int64_t b = l / (g.Ht * g.Wt), p = l % (g.Ht * g.Wt);
  return patch_pair_distance(PatchRef<T>{g.target + b * g.C * g.Ht * g.Wt, g.Ht, g.Wt, p / g.Wt, p % g.Wt},
                             PatchRef<T>{g.source + b * g.C * g.Hs * g.Ws, g.Hs, g.Ws, g.match_y[l], g.match_x[l]},
                             g.C, g.radius, kMetricL2);
}

// d/d target[b, c, y, x] of sum_i ||P_i - P_nn(i)||^2 (before the 2/N scale), bc = b * C + c, as a
// gather: every masked target centre p whose patch covers (y, x) contributes
// target[c, y, x] - source[c, nn(p) + ((y, x) - p)]. Summing in a fixed offset order makes the gradient
// deterministic with no atomics.
template <typename T>
NPS_HOST_DEVICE inline T texture_grad_at(const TextureBatch<T>& g, int64_t bc, int64_t y, int64_t x) {
  const int64_t b = bc / g.C, plane = b * g.Ht * g.Wt;
  const T v = g.target[(bc * g.Ht + y) * g.Wt + x];
  const T* s_plane = g.source + bc * g.Hs * g.Ws;
  const bool* mask = g.t_mask + plane;
  const int64_t* match_y = g.match_y + plane;
  const int64_t* match_x = g.match_x + plane;
  T acc = 0;
  for (int dy = -g.radius; dy <= g.radius; ++dy) {
    const int64_t py = y - dy;
    if (py < 0 || py >= g.Ht) continue;
    for (int dx = -g.radius; dx <= g.radius; ++dx) {
      const int64_t px = x - dx, p = py * g.Wt + px;
      if (px < 0 || px >= g.Wt || !mask[p]) continue;
      acc += v - padded_at(s_plane, g.Hs, g.Ws, match_y[p] + dy, match_x[p] + dx);
    }
  }
  return acc;
}

// The same for the flat element l = flat (b, c, y, x).
template <typename T>
NPS_HOST_DEVICE inline T texture_grad_at(const TextureBatch<T>& g, int64_t l) {
  return texture_grad_at(g, l / (g.Ht * g.Wt), (l / g.Wt) % g.Ht, l % g.Wt);
}

}  // namespace npsynth
