#pragma once
// PatchMatch (Barnes et al. 2009) steps shared by the CPU and CUDA kernels of the patchmatch op.
//
// The field is improved line by line: a pass walks every row (or every column) of the target map in one
// direction, and each line is one sequential walk, so a match found at one position propagates along the
// whole line in that pass. Lines never read each other's entries, so the lines of a pass run in parallel
// in any order with the same result; alternating row and column passes and flipping the direction every
// iteration propagates in all four directions. Each visited target tries
//   * its predecessor's match shifted by one step, and the matches its two neighbours across the line
//     had when the pass began, shifted likewise (propagation), and
//   * random candidates around its current match in windows of radius R, R/2, ..., 1 (random search),
// drawn from a counter-based hash of (seed, pass, target, sample), so the field depends on the seed only.
//
// Distances come from dot products and precomputed patch norms (patch_distance_from_dot) over
// position-major copies of the maps (one row of C channels per position), so the inner loop is a
// contiguous dot product. A candidate's dot product is summed by `lanes` cooperating threads: one on the
// CPU, a warp on CUDA; `sum` adds up their partial sums and hands every lane the same total, so every lane
// takes the same decisions.
#include <cstdint>

#include "common/patch_math.h"

#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#define NPS_SIMD_SUM_ACC _Pragma("omp simd reduction(+ : acc)")
#else
#define NPS_SIMD_SUM_ACC
#endif

namespace npsynth {

// splitmix64's finaliser: a bijective 64-bit mix, so distinct counters give unrelated outputs.
NPS_HOST_DEVICE NPS_INLINED uint64_t pm_mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The random draw number `sample` for target position `target` in pass `pass` (pass -1: the start).
NPS_HOST_DEVICE NPS_INLINED uint64_t pm_random(int64_t seed, int64_t pass, int64_t target, int64_t sample) {
  return pm_mix(pm_mix(pm_mix(static_cast<uint64_t>(seed)) ^ static_cast<uint64_t>(pass)) ^
                (static_cast<uint64_t>(target) << 8 ^ static_cast<uint64_t>(sample)));
}

// The maps of a batch as the kernels read them: B items, each laid out as described per field.
template <typename T>
struct PatchmatchBatch {
  const T* t_rows;        // [t_rows_h * Wt, C] target rows t_row0.. (all that masked targets read), position-major
  const T* s_rows;        // [Hs * Ws, C] source, position-major
  const T* t_norm2;       // [Ht * Wt] squared norm of the patch centred on each target position
  const T* s_norm2;       // [Hs * Ws] the same for the source
  const bool* t_mask;     // [Ht * Wt] which targets to match
  const bool* s_valid;    // [Hs * Ws] which source centres may be matched
  const int64_t* s_list;  // [Hs * Ws] the valid source centres first
  const int64_t* n_valid; // how many there are (one count per item)
  int64_t* index;         // [Ht * Wt] the field being improved (-1 off the mask)
  const int64_t* before;  // [Ht * Wt] the field as it was when the current pass began
  T* dist;                // [Ht * Wt] the search distance of each entry of the field
};

// One item of a batch: the same pointers, moved to that item.
template <typename T>
using PatchmatchItem = PatchmatchBatch<T>;

// The shapes and settings of one call.
struct PatchmatchShape {
  int64_t C, Ht, Wt, Hs, Ws;
  int64_t t_row0, t_rows_h;  // the target rows copied: the masked rows' span grown by the patch radius, or all
  int radius;         // patch radius
  int metric;
  int64_t search;     // largest random-search radius, in source positions
  int64_t seed;
};

template <typename T>
NPS_HOST_DEVICE NPS_INLINED PatchmatchItem<T> pm_item(const PatchmatchBatch<T>& g, const PatchmatchShape& s, int64_t b) {
  const int64_t nt = s.Ht * s.Wt, ns = s.Hs * s.Ws;
  return PatchmatchItem<T>{g.t_rows + b * s.t_rows_h * s.Wt * s.C, g.s_rows + b * ns * s.C, g.t_norm2 + b * nt,
                           g.s_norm2 + b * ns,      g.t_mask + b * nt,        g.s_valid + b * ns,
                           g.s_list + b * ns,       g.n_valid + b,            g.index + b * nt,
                           g.before + b * nt,       g.dist + b * nt};
}

// Partial dot product, over channels lane, lane + lanes, ..., of the target patch centred on flat position
// p and the source patch centred on q; taps off either map are zero padding and add nothing.
template <int lanes, typename T>
NPS_HOST_DEVICE NPS_INLINED T pm_dot_partial(const PatchmatchItem<T>& m, const PatchmatchShape& s, int64_t p, int64_t q,
                                        int lane) {
  const int64_t ty = p / s.Wt, tx = p % s.Wt, sy = q / s.Ws, sx = q % s.Ws;
  T total = 0;
  for (int dy = -s.radius; dy <= s.radius; ++dy) {
    if (ty + dy < 0 || ty + dy >= s.Ht || sy + dy < 0 || sy + dy >= s.Hs) continue;
    for (int dx = -s.radius; dx <= s.radius; ++dx) {
      if (tx + dx < 0 || tx + dx >= s.Wt || sx + dx < 0 || sx + dx >= s.Ws) continue;
      const T* a = m.t_rows + ((ty + dy - s.t_row0) * s.Wt + tx + dx) * s.C;
      const T* b = m.s_rows + ((sy + dy) * s.Ws + sx + dx) * s.C;
      T acc = 0;
      NPS_SIMD_SUM_ACC
      for (int64_t c = lane; c < s.C; c += lanes) acc += a[c] * b[c];
      total += acc;
    }
  }
  return total;
}

// Distance of target p to source q for the search; `sum` totals the lanes' partial dot products.
template <int lanes, typename T, typename Sum>
NPS_HOST_DEVICE NPS_INLINED T pm_distance(const PatchmatchItem<T>& m, const PatchmatchShape& s, int64_t p, int64_t q,
                                     int lane, Sum sum) {
  return patch_distance_from_dot(sum(pm_dot_partial<lanes>(m, s, p, q, lane)), m.t_norm2[p], m.s_norm2[q], s.metric);
}

// Candidate source q for target p: kept if it beats the best so far. No candidate (q < 0) and the best
// itself are skipped without computing a distance.
template <int lanes, typename T, typename Sum>
NPS_HOST_DEVICE NPS_INLINED void pm_try(const PatchmatchItem<T>& m, const PatchmatchShape& s, int64_t p, int64_t q,
                                        int lane, Sum sum, T& best_d, int64_t& best_q) {
  if (q >= 0 && q != best_q) nn_merge(pm_distance<lanes>(m, s, p, q, lane, sum), q, best_d, best_q);
}

// Source centre (y, x) as a candidate: its flat index, or -1 when it is off the map or not a valid source.
template <typename T>
NPS_HOST_DEVICE NPS_INLINED int64_t pm_candidate(const PatchmatchItem<T>& m, const PatchmatchShape& s, int64_t y,
                                            int64_t x) {
  if (y < 0 || y >= s.Hs || x < 0 || x >= s.Ws) return -1;
  const int64_t q = y * s.Ws + x;
  return m.s_valid[q] ? q : -1;
}

// A uniformly drawn valid source centre.
template <typename T>
NPS_HOST_DEVICE inline int64_t pm_random_source(const PatchmatchItem<T>& m, uint64_t draw) {
  return m.s_list[draw % static_cast<uint64_t>(*m.n_valid)];
}

// Starting entry of target p: init[p] when it names a valid source centre, else a random one; and its
// distance (-1 and 0 off the mask). Written to the field by lane 0.
template <int lanes, typename T, typename Sum>
NPS_HOST_DEVICE inline void pm_start(const PatchmatchItem<T>& m, const PatchmatchShape& s, const int64_t* init,
                                     int64_t p, int lane, Sum sum) {
  if (!m.t_mask[p]) {
    if (lane == 0) m.index[p] = -1, m.dist[p] = T(0);
    return;
  }
  int64_t q = -1;
  if (init[p] >= 0 && init[p] < s.Hs * s.Ws && m.s_valid[init[p]]) q = init[p];
  if (q < 0) q = pm_random_source(m, pm_random(s.seed, -1, p, 0));
  const T d = pm_distance<lanes>(m, s, p, q, lane, sum);
  if (lane == 0) m.index[p] = q, m.dist[p] = d;
}

// Which line a pass walks and how: rows or columns, forwards or backwards.
struct PatchmatchPass {
  int64_t number;  // 0, 1, ...: keys the random draws
  bool rows;       // walk along rows (x changes) or along columns (y changes)
  bool forward;    // towards larger x / y
};

// The pass `number` of the schedule: rows then columns, forwards on even iterations, backwards on odd.
NPS_HOST_DEVICE inline PatchmatchPass pm_pass(int64_t number) {
  return PatchmatchPass{number, number % 2 == 0, (number / 2) % 2 == 0};
}

// Number of lines a pass walks.
NPS_HOST_DEVICE inline int64_t pm_line_count(const PatchmatchShape& s, PatchmatchPass pass) {
  return pass.rows ? s.Ht : s.Wt;
}

// One pass over one line: each masked target in walking order tries its predecessor's match shifted by
// one step, the matches its two neighbours across the line had when the pass began (shifted likewise),
// then the random-search candidates around its best match so far. Only lane 0 writes.
template <int lanes, typename T, typename Sum>
NPS_HOST_DEVICE NPS_INLINED void pm_walk_line(const PatchmatchItem<T>& m, const PatchmatchShape& s, PatchmatchPass pass,
                                         int64_t line, int lane, Sum sum) {
  const int64_t length = pass.rows ? s.Wt : s.Ht;
  const int64_t step = pass.forward ? 1 : -1;
  const int64_t sy_step = pass.rows ? 0 : step, sx_step = pass.rows ? step : 0;
  int64_t previous = -1;  // the predecessor's match, -1 when the predecessor is not a masked target
  for (int64_t i = 0; i < length; ++i) {
    const int64_t along = pass.forward ? i : length - 1 - i;
    const int64_t p = pass.rows ? line * s.Wt + along : along * s.Wt + line;
    if (!m.t_mask[p]) {
      previous = -1;
      continue;
    }
    int64_t best_q = m.index[p];
    T best_d = m.dist[p];
    if (previous >= 0) {
      const int64_t q = pm_candidate(m, s, previous / s.Ws + sy_step, previous % s.Ws + sx_step);
      pm_try<lanes>(m, s, p, q, lane, sum, best_d, best_q);
    }
    for (int side = -1; side <= 1; side += 2) {
      const int64_t y = p / s.Wt + (pass.rows ? side : 0), x = p % s.Wt + (pass.rows ? 0 : side);
      if (y < 0 || y >= s.Ht || x < 0 || x >= s.Wt || m.before[y * s.Wt + x] < 0) continue;
      const int64_t n = m.before[y * s.Wt + x];
      const int64_t q = pm_candidate(m, s, n / s.Ws - (pass.rows ? side : 0), n % s.Ws - (pass.rows ? 0 : side));
      pm_try<lanes>(m, s, p, q, lane, sum, best_d, best_q);
    }
    int64_t sample = 0;
    for (int64_t r = s.search; r >= 1; r /= 2, ++sample) {
      const uint64_t draw = pm_random(s.seed, pass.number, p, sample);
      // The window, moved inside the map so that every draw lands on it.
      const int64_t by = best_q / s.Ws, bx = best_q % s.Ws;
      const int64_t y0 = by - r < 0 ? 0 : by - r, y1 = by + r >= s.Hs ? s.Hs - 1 : by + r;
      const int64_t x0 = bx - r < 0 ? 0 : bx - r, x1 = bx + r >= s.Ws ? s.Ws - 1 : bx + r;
      const int64_t q = pm_candidate(m, s, y0 + static_cast<int64_t>(draw % (y1 - y0 + 1)),
                                     x0 + static_cast<int64_t>((draw >> 32) % (x1 - x0 + 1)));
      pm_try<lanes>(m, s, p, q, lane, sum, best_d, best_q);
    }
    if (lane == 0) m.index[p] = best_q, m.dist[p] = best_d;
    previous = best_q;
  }
}

// The returned distance of flat (batch, target) position l, computed directly as patch_nn reports it
// (from the position-major copies, whose rows are contiguous).
template <typename T>
NPS_HOST_DEVICE inline void pm_finish(const PatchmatchBatch<T>& g, const PatchmatchShape& s, int64_t l) {
  if (!g.t_mask[l]) return;
  const int64_t nt = s.Ht * s.Wt, b = l / nt, p = l % nt, q = g.index[l];
  const PatchmatchItem<T> m = pm_item(g, s, b);
  // The copy's first row is 0 or a row no tap reaches below, so its edges pad exactly where the map's do.
  g.dist[l] = patch_pair_distance(PatchRef<T>{m.t_rows, s.t_rows_h, s.Wt, p / s.Wt - s.t_row0, p % s.Wt, 1, s.C},
                                  PatchRef<T>{m.s_rows, s.Hs, s.Ws, q / s.Ws, q % s.Ws, 1, s.C}, s.C, s.radius,
                                  s.metric);
}

}  // namespace npsynth
