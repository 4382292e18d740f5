#pragma once
// Host-side glue of patchmatch shared by the CPU and CUDA entry points: the position-major copies of the
// maps, the patch norms, the list of valid sources, the starting field and the output field, all made with
// tensor ops on the inputs' device (host reads: on the CPU, the span of masked rows, in patchmatch_shape;
// with no start given, the stand-in search's few, see patchmatch/start.cpp).
#include <algorithm>
#include <optional>
#include <string_view>
#include <tuple>

#include <ATen/core/Tensor.h>
#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/zeros.h>

#include "common/patchmatch_math.h"
#include "patchmatch/start.h"

namespace npsynth {

// Squared norm of the zero-padded k x k patch centred on every position of a position-major copy
// [B, h, W, C] of h rows of a map: a k x k box sum of the positions' squared norms. -> [B, h, W]
// (The norm of each contiguous row of C values is the cheap reduction here: squaring the whole map in
// channel-major order first took 5x longer.)
inline at::Tensor patch_sqnorms(const at::Tensor& rows, int64_t patch_size) {
  const int64_t r = patch_size / 2;
  if (rows.size(1) == 0) return at::zeros(rows.sizes().slice(0, 3), rows.options());
  const at::Tensor sq = at::linalg_vector_norm(rows, 2, {-1}).square().unsqueeze(1);
  return at::avg_pool2d(sq, {patch_size, patch_size}, {1, 1}, {r, r}, /*ceil_mode=*/false,
                        /*count_include_pad=*/true, /*divisor_override=*/1)
      .squeeze(1)
      .contiguous();
}

// The target's patch norms on its whole grid, from the copy of its masked rows' span: those rows' norms,
// zeros on the rows no masked target reaches (never read).
inline at::Tensor target_sqnorms(const at::Tensor& t_rows, const PatchmatchShape& s, int64_t patch_size) {
  at::Tensor full = at::zeros({t_rows.size(0), s.Ht, s.Wt}, t_rows.options());
  full.narrow(1, s.t_row0, s.t_rows_h).copy_(patch_sqnorms(t_rows, patch_size));
  return full;
}

// Everything the kernels read and write, owned for the length of one call. `start` is the caller's
// init_index or, with none, the stand-in search's field (found with the patch_nn of op namespace `ops`).
struct PatchmatchTensors {
  at::Tensor t_rows, s_rows, t_norm2, s_norm2, t_mask, s_valid, s_list, n_valid, index, before, dist, start;

  PatchmatchTensors(std::string_view ops, const at::Tensor& target, const at::Tensor& source, const at::Tensor& target_mask,
                    const at::Tensor& source_valid, int64_t patch_size, c10::string_view metric,
                    const std::optional<at::Tensor>& init_index, const PatchmatchShape& s)
      : t_rows(target.narrow(2, s.t_row0, s.t_rows_h).permute({0, 2, 3, 1}).contiguous()),
        s_rows(source.permute({0, 2, 3, 1}).contiguous()),
        t_norm2(target_sqnorms(t_rows, s, patch_size)),
        s_norm2(patch_sqnorms(s_rows, patch_size)),
        t_mask(target_mask),
        s_valid(source_valid),
        index(at::empty(target_mask.sizes(), target.options().dtype(at::kLong))),
        before(at::empty_like(index)),
        dist(at::empty(target_mask.sizes(), target.options())),
        start(init_index.has_value()
                  ? *init_index
                  : patchmatch_start_field(ops, target, source, target_mask, source_valid, patch_size, metric, s)) {
    const at::Tensor flat_valid = source_valid.flatten(1);
    // A stable sort of "not valid" puts each item's valid centres first, in increasing order.
    s_list = std::get<1>(flat_valid.logical_not().to(at::kByte).sort(/*stable=*/true, 1, false)).contiguous();
    n_valid = flat_valid.sum(1).contiguous();
  }

  template <typename T>
  PatchmatchBatch<T> batch() {
    return PatchmatchBatch<T>{t_rows.data_ptr<T>(),      s_rows.data_ptr<T>(),        t_norm2.data_ptr<T>(),
                              s_norm2.data_ptr<T>(),     t_mask.data_ptr<bool>(),     s_valid.data_ptr<bool>(),
                              s_list.data_ptr<int64_t>(), n_valid.data_ptr<int64_t>(), index.data_ptr<int64_t>(),
                              before.data_ptr<int64_t>(), dist.data_ptr<T>()};
  }
};

// With span_rows, only the target rows within the patch radius of a masked row are copied (finding the
// span reads the mask on the host); without, every row is (CUDA: copying a whole feature map costs less
// than the sync would, and the call then never waits for the device).
inline PatchmatchShape patchmatch_shape(const at::Tensor& target, const at::Tensor& source,
                                        const at::Tensor& target_mask, int64_t patch_size, int metric, int64_t radius,
                                        int64_t seed, bool span_rows) {
  const int64_t Ht = target.size(2), Hs = source.size(2), Ws = source.size(3), r = patch_size / 2;
  int64_t row0 = 0, row1 = Ht;
  if (span_rows) {
    const at::Tensor rows = target_mask.any(2).any(0).nonzero();
    row0 = rows.numel() ? std::max<int64_t>(0, rows.min().item<int64_t>() - r) : 0;
    row1 = rows.numel() ? std::min<int64_t>(Ht, rows.max().item<int64_t>() + r + 1) : 0;
  }
  return PatchmatchShape{target.size(1), Ht, target.size(3), Hs, Ws, row0, row1 - row0, static_cast<int>(r),
                         metric, radius > 0 ? radius : std::max(Hs, Ws), seed};
}

// The passes of `iters` iterations in order: snapshot the field for the cross-line candidates, then
// walk(pass, lines per batch item).
template <typename Walk>
void for_each_pass(PatchmatchTensors& t, const PatchmatchShape& s, int64_t iters, Walk walk) {
  for (int64_t number = 0; number < 2 * iters; ++number) {
    const PatchmatchPass pass = pm_pass(number);
    t.before.copy_(t.index);
    walk(pass, pm_line_count(s, pass));
  }
}

}  // namespace npsynth
