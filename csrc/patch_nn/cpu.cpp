// Exact patch nearest neighbours on the CPU, fused and tiled.
//
// The dot product of two k x k patches is a sum over the k*k patch offsets d of per-position channel dot
// products: <P_t(p), P_s(q)> = sum_d <t[p + d], s[q + d]>. Copy each map once into position-major order
// (one row of C values per position, zero rows for the padding) and number positions row by row: a run of
// consecutive positions is then a plain [n, C] matrix, and shifting the run by one constant per offset d
// gives the matching patch elements. So the dot products of a tile of targets against a tile of sources are
// k*k accumulated GEMMs straight from the copies: no unfolded patch matrix and no full score matrix, and the
// inner loop runs at the machine's sgemm speed. The shared epilogue turns dot products into distances and
// keeps a running argmin per target; a last pass recomputes each winner's distance exactly.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "common/patch_math.h"
#include "common/op_checks.h"

namespace npsynth {
namespace {

// Tile sizes: the score tile (kTargetTile x kSourceTile) stays in L2/L3, and each GEMM is large enough
// (C x 512 x 1024) for the BLAS to run at full speed.
constexpr int64_t kTargetTile = 512;
constexpr int64_t kSourceTile = 1024;

struct Box {  // half-open [y0, y1) x [x0, x1)
  int64_t y0, y1, x0, x1;
  bool empty() const { return y1 <= y0; }
};

Box mask_box(const bool* mask, int64_t H, int64_t W) {
  Box b{H, 0, W, 0};
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      if (mask[y * W + x]) {
        b.y0 = std::min(b.y0, y), b.y1 = std::max(b.y1, y + 1);
        b.x0 = std::min(b.x0, x), b.x1 = std::max(b.x1, x + 1);
      }
  return b;
}

// The patch centres of `box` and the radius around them, copied position-major: rows[lin(y, x)] holds the C
// channels of position (y, x), zeros off the map.
template <typename T>
struct PositionRows {
  at::Tensor rows;  // [Hp * Wp, C]
  Box box;
  int64_t Wp, radius;

  PositionRows(const T* fmap, int64_t C, int64_t H, int64_t W, Box b, int r) : box(b), radius(r) {
    const int64_t Hp = b.y1 - b.y0 + 2 * r;
    Wp = b.x1 - b.x0 + 2 * r;
    rows = at::empty({Hp * Wp, C}, at::CPU(c10::CppTypeToScalarType<T>::value));
    T* out = rows.data_ptr<T>();
    at::parallel_for(0, Hp, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t y = b.y0 - r + i;
        for (int64_t j = 0; j < Wp; ++j) {
          const int64_t x = b.x0 - r + j;
          T* row = out + (i * Wp + j) * C;
          const bool inside = y >= 0 && y < H && x >= 0 && x < W;
          for (int64_t c = 0; c < C; ++c) row[c] = inside ? fmap[(c * H + y) * W + x] : T(0);
        }
      }
    });
  }
  int64_t lin(int64_t y, int64_t x) const { return (y - box.y0 + radius) * Wp + (x - box.x0 + radius); }
  int64_t first() const { return lin(box.y0, box.x0); }
  int64_t last() const { return lin(box.y1 - 1, box.x1 - 1) + 1; }
  // The run of n positions starting at linear position `start`, shifted by patch offset (dy, dx).
  at::Tensor run(int64_t start, int64_t n, int dy, int dx) const { return rows.narrow(0, start + dy * Wp + dx, n); }
};

// For every linear position in [rows.first(), rows.last()): the flat centre index in the map if `mask` holds
// there (else -1), and that patch's squared norm.
template <typename T>
void centres_and_norms(const PositionRows<T>& rows, const T* fmap, const bool* mask, int64_t C, int64_t H,
                       int64_t W, std::vector<int64_t>& centre, std::vector<T>& norm2) {
  const int64_t first = rows.first(), n = rows.last() - first;
  centre.assign(n, -1);
  norm2.assign(n, T(0));
  at::parallel_for(0, n, 64, [&](int64_t a, int64_t b) {
    for (int64_t l = a; l < b; ++l) {
      const int64_t y = rows.box.y0 + (first + l) / rows.Wp - rows.radius;
      const int64_t x = rows.box.x0 + (first + l) % rows.Wp - rows.radius;
      if (y < 0 || y >= H || x < 0 || x >= W || !mask[y * W + x]) continue;
      centre[l] = y * W + x;
      norm2[l] = patch_sqnorm(fmap, C, H, W, y, x, static_cast<int>(rows.radius));
    }
  });
}

// The source centres to scan, as boxes: bands of kBandRows rows, each cut into the column intervals that
// hold valid centres (gaps narrower than kMinGap are bridged). Scanning boxes instead of the whole map skips
// the hole, where no source is valid (about a third of the GEMM work at the paper's shapes), and keeps only
// one band's copy in memory at a time.
constexpr int64_t kBandRows = 16;
constexpr int64_t kMinGap = 8;

std::vector<Box> source_boxes(const bool* valid, int64_t H, int64_t W) {
  std::vector<Box> boxes;
  std::vector<char> any(W);
  for (int64_t y0 = 0; y0 < H; y0 += kBandRows) {
    const int64_t y1 = std::min(H, y0 + kBandRows);
    for (int64_t x = 0; x < W; ++x) {
      any[x] = 0;
      for (int64_t y = y0; y < y1 && !any[x]; ++y) any[x] = valid[y * W + x];
    }
    for (int64_t x = 0; x < W;) {
      if (!any[x]) { ++x; continue; }
      int64_t end = x + 1, gap = 0;  // extend while the gap of invalid columns stays below kMinGap
      for (int64_t u = x + 1; u < W && gap < kMinGap; ++u) {
        if (any[u]) end = u + 1, gap = 0;
        else ++gap;
      }
      Box b{y1, y0, x, end};  // tighten the rows to those with a valid centre in [x, end)
      for (int64_t y = y0; y < y1; ++y)
        for (int64_t u = x; u < end; ++u)
          if (valid[y * W + u]) b.y0 = std::min(b.y0, y), b.y1 = y + 1;
      boxes.push_back(b);
      x = end;
    }
  }
  return boxes;
}

template <typename T>
void patch_nn_one(const T* target, const T* source, const bool* t_mask, const bool* s_valid, int64_t C,
                  int64_t Ht, int64_t Wt, int64_t Hs, int64_t Ws, int radius, int metric, int64_t* out_index,
                  T* out_dist) {
  const Box t_box = mask_box(t_mask, Ht, Wt);
  if (t_box.empty()) return;
  const PositionRows<T> t_rows(target, C, Ht, Wt, t_box, radius);
  std::vector<int64_t> t_centre, s_centre;
  std::vector<T> t_norm2, s_norm2;
  centres_and_norms(t_rows, target, t_mask, C, Ht, Wt, t_centre, t_norm2);
  const int64_t t_first = t_rows.first(), t_n = t_rows.last() - t_first;
  std::vector<T> best_d(t_n, std::numeric_limits<T>::infinity());
  std::vector<int64_t> best_j(t_n, -1);
  at::Tensor score_buf = at::empty({kTargetTile * kSourceTile}, t_rows.rows.options());
  const auto none = [](const std::vector<int64_t>& centre, int64_t from, int64_t n) {
    return std::all_of(centre.begin() + from, centre.begin() + from + n, [](int64_t c) { return c < 0; });
  };

  for (const Box& s_box : source_boxes(s_valid, Hs, Ws)) {
    const PositionRows<T> s_rows(source, C, Hs, Ws, s_box, radius);
    centres_and_norms(s_rows, source, s_valid, C, Hs, Ws, s_centre, s_norm2);
    const int64_t s_first = s_rows.first(), s_n = s_rows.last() - s_first;
    for (int64_t ti = 0; ti < t_n; ti += kTargetTile) {
      const int64_t nt = std::min(kTargetTile, t_n - ti);
      if (none(t_centre, ti, nt)) continue;
      for (int64_t si = 0; si < s_n; si += kSourceTile) {
        const int64_t ns = std::min(kSourceTile, s_n - si);
        if (none(s_centre, si, ns)) continue;
        // score[i, j] = <P_t(ti + i), P_s(si + j)>, accumulated over the patch offsets.
        at::Tensor score = score_buf.narrow(0, 0, nt * ns).view({nt, ns});
        bool first = true;
        for (int dy = -radius; dy <= radius; ++dy)
          for (int dx = -radius; dx <= radius; ++dx) {
            const at::Tensor a = t_rows.run(t_first + ti, nt, dy, dx);
            const at::Tensor b = s_rows.run(s_first + si, ns, dy, dx);
            if (first) at::mm_out(score, a, b.t());
            else score.addmm_(a, b.t());
            first = false;
          }
        const T* sc = score.data_ptr<T>();
        // Each row's distances first, in a branch-free loop the compiler vectorises (no source: +inf),
        // then one scan for the row's winner: the first j holding the row's least distance is its smallest
        // source index among ties (indices rise with j). Comparing pair by pair had cost as much as the
        // GEMMs when patches are short (patchmatch's start searches 144-value stand-ins).
        at::parallel_for(0, nt, 16, [&](int64_t i0, int64_t i1) {
          std::vector<T> row(ns);
          for (int64_t i = i0; i < i1; ++i) {
            if (t_centre[ti + i] < 0) continue;
            const T tn2 = t_norm2[ti + i], none_d = std::numeric_limits<T>::infinity();
            const T* dots = sc + i * ns;
            const int64_t* centre = s_centre.data() + si;
            const T* sn2 = s_norm2.data() + si;
            T low = none_d;
#pragma omp simd reduction(min : low)
            for (int64_t j = 0; j < ns; ++j) {
              const T d = centre[j] >= 0 ? patch_distance_from_dot(dots[j], tn2, sn2[j], metric) : none_d;
              row[j] = d;
              low = d < low ? d : low;
            }
            if (!(low < none_d)) {  // no finite distance here: rank the valid ones at +inf or NaN by nn_better
              for (int64_t j = 0; j < ns; ++j)
                if (centre[j] >= 0) nn_merge(row[j], centre[j], best_d[ti + i], best_j[ti + i]);
              continue;
            }
            int64_t j = 0;
            while (row[j] != low) ++j;
            nn_merge(low, centre[j], best_d[ti + i], best_j[ti + i]);
          }
        });
      }
    }
  }
  // The GEMM form loses digits to cancellation for l2; report each winner's distance computed directly.
  at::parallel_for(0, t_n, 16, [&](int64_t a, int64_t b) {
    for (int64_t l = a; l < b; ++l) {
      const int64_t p = t_centre[l], q = best_j[l];
      if (p < 0) continue;
      out_index[p] = q;
      out_dist[p] = patch_pair_distance(PatchRef<T>{target, Ht, Wt, p / Wt, p % Wt},
                                        PatchRef<T>{source, Hs, Ws, q / Ws, q % Ws}, C, radius, metric);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> patch_nn_cpu(const at::Tensor& target, const at::Tensor& source,
                                                const at::Tensor& target_mask, const at::Tensor& source_valid,
                                                int64_t patch_size, c10::string_view metric) {
  check_patch_nn(target, source, target_mask, source_valid, patch_size);
  check_has_valid_source(source_valid);
  const int metric_id = parse_metric(metric);
  const int64_t B = target.size(0), C = target.size(1), Ht = target.size(2), Wt = target.size(3);
  const int64_t Hs = source.size(2), Ws = source.size(3);
  at::Tensor index = at::full({B, Ht, Wt}, -1, target.options().dtype(at::kLong));
  at::Tensor dist = at::zeros({B, Ht, Wt}, target.options());
  AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "patch_nn_cpu", [&] {
    for (int64_t b = 0; b < B; ++b) {
      patch_nn_one<scalar_t>(target.data_ptr<scalar_t>() + b * C * Ht * Wt,
                             source.data_ptr<scalar_t>() + b * C * Hs * Ws,
                             target_mask.data_ptr<bool>() + b * Ht * Wt, source_valid.data_ptr<bool>() + b * Hs * Ws,
                             C, Ht, Wt, Hs, Ws, static_cast<int>(patch_size / 2), metric_id,
                             index.data_ptr<int64_t>() + b * Ht * Wt, dist.data_ptr<scalar_t>() + b * Ht * Wt);
    }
  });
  return {index, dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(npsynth, CPU, m) { m.impl("patch_nn", &patch_nn_cpu); }

}  // namespace npsynth
