// Where patchmatch starts when the caller gives no starting field (see start.h): an exact search among
// cheap stand-ins of the patches. Host code, compiled once, shared by the CPU and CUDA entry points; it
// runs tensor ops on the inputs' device and reaches patch_nn through the dispatcher.
#include "patchmatch/start.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/full.h>
#include <ATen/ops/im2col.h>
#include <ATen/ops/linalg_eigh.h>
#include <ATen/ops/linalg_qr.h>

namespace npsynth {
namespace {

constexpr int64_t kStartDims = 144;        // numbers in one patch's stand-in
constexpr int64_t kStartStride = 2;        // the grid of sources the start searches
constexpr double kStartFitWork = 1 << 18;  // channels x sample positions the directions are fitted on
constexpr int64_t kStartSpare = 8;         // extra directions the subspace iteration carries
constexpr int kStartRounds = 3;            // its rounds

// [B, C, d]: the d leading principal directions of each item's source channels, fitted on the valid
// source positions of a regular grid of about kStartFitWork / C positions. For l2 they are the directions
// of most variance about the mean (distances ignore the mean); for cosine, of the largest second moment
// about zero (angles are measured from zero: for cosine, directions about the mean fit the search less
// well). They come from a few rounds of subspace iteration on the covariance (started from its
// highest-variance columns) and a small eigenproblem, which cost far less than a full C x C
// eigendecomposition and suffice for a start that the iterations then refine.
at::Tensor start_basis(const at::Tensor& source, const at::Tensor& source_valid, int64_t d, int metric) {
  const int64_t C = source.size(1), Hs = source.size(2), Ws = source.size(3);
  const int64_t step = std::max<int64_t>(1, std::llround(std::sqrt(Hs * Ws * C / kStartFitWork)));
  const at::Tensor x = source.slice(2, 0, Hs, step).slice(3, 0, Ws, step).flatten(2);  // [B, C, n]
  const at::Tensor w =
      source_valid.slice(1, 0, Hs, step).slice(2, 0, Ws, step).flatten(1).unsqueeze(1).to(x.scalar_type());
  // About the valid positions' mean for l2, about zero for cosine; invalid positions drop out (weight 0).
  const at::Tensor about =
      metric == kMetricL2 ? x.sub(x.mul(w).sum(2, /*keepdim=*/true).div(w.sum(2, /*keepdim=*/true).clamp_min(1))) : x;
  const at::Tensor centred = about.mul(w);
  // The small dense linear algebra runs on the host: it needs no GPU solver library.
  const at::Tensor cov = centred.matmul(centred.transpose(1, 2)).cpu();  // [B, C, C]
  const int64_t l = std::min(C, d + kStartSpare);
  const at::Tensor top = std::get<1>(cov.diagonal(0, 1, 2).topk(l, 1));  // [B, l]
  at::Tensor q = cov.gather(2, top.unsqueeze(1).expand({-1, C, -1}));  // [B, C, l]
  for (int round = 0; round < kStartRounds; ++round) q = std::get<0>(at::linalg_qr(cov.matmul(q)));
  const at::Tensor small = q.transpose(1, 2).matmul(cov).matmul(q);  // [B, l, l]
  const at::Tensor vectors = q.matmul(std::get<1>(at::linalg_eigh(small)));
  return vectors.narrow(2, l - d, d).to(source.device());  // eigenvalues ascend: the last d lead
}

// [B, d*k*k, H', W']: the stand-in of the k x k patch centred on every `stride`-th position of fmap.
at::Tensor start_stand_ins(const at::Tensor& fmap, const at::Tensor& basis, int64_t patch_size,
                                  int64_t stride) {
  const int64_t B = fmap.size(0), H = fmap.size(2), W = fmap.size(3), r = patch_size / 2;
  const at::Tensor projected = basis.transpose(1, 2).matmul(fmap.flatten(2)).view({B, -1, H, W});
  const at::Tensor cols = at::im2col(projected, {patch_size, patch_size}, {1, 1}, {r, r}, {stride, stride});
  return cols.view({B, cols.size(1), (H - 1) / stride + 1, (W - 1) / stride + 1});
}

// patch_nn of op namespace `ops` ("npsynth", or "npsynth_emu" for the emulated CUDA kernels).
std::tuple<at::Tensor, at::Tensor> call_patch_nn(std::string_view ops, const at::Tensor& target,
                                                        const at::Tensor& source, const at::Tensor& target_mask,
                                                        const at::Tensor& source_valid, int64_t patch_size,
                                                        std::string_view metric) {
  const std::string name = std::string(ops) + "::patch_nn";
  const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow(name.c_str(), "")
          .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                    const at::Tensor&, int64_t, c10::string_view)>();
  return op.call(target, source, target_mask, source_valid, patch_size,
                 c10::string_view(metric.data(), metric.size()));
}

}  // namespace

// The starting field [B, Ht, Wt]: each masked target's nearest source by stand-in, -1 off the mask; the
// search is the patch_nn of op namespace `ops`.
at::Tensor patchmatch_start_field(std::string_view ops, const at::Tensor& target, const at::Tensor& source,
                                         const at::Tensor& target_mask, const at::Tensor& source_valid,
                                         int64_t patch_size, std::string_view metric, const PatchmatchShape& s) {
  at::Tensor field = at::full(target_mask.sizes(), -1, target_mask.options().dtype(at::kLong));
  if (s.t_rows_h == 0) return field;
  const int64_t d = std::min(s.C, std::max<int64_t>(1, kStartDims / (patch_size * patch_size)));
  const at::Tensor basis = start_basis(source, source_valid, d, s.metric);
  int64_t stride = kStartStride;
  at::Tensor grid_valid = source_valid.slice(1, 0, s.Hs, stride).slice(2, 0, s.Ws, stride).contiguous();
  if (!grid_valid.flatten(1).any(1).all().item<bool>()) {  // the grid misses every valid source of an item
    stride = 1;
    grid_valid = source_valid;
  }
  // Only the masked rows' span of the target (see patchmatch_shape): its zero padding above and below
  // is read only where the map's own padding is.
  const at::Tensor t_stand_ins = start_stand_ins(target.narrow(2, s.t_row0, s.t_rows_h), basis, patch_size, 1);
  const at::Tensor s_stand_ins = start_stand_ins(source, basis, patch_size, stride);
  const at::Tensor rows_mask = target_mask.narrow(1, s.t_row0, s.t_rows_h).contiguous();
  const at::Tensor grid_index =
      std::get<0>(call_patch_nn(ops, t_stand_ins, s_stand_ins, rows_mask, grid_valid, 1, metric));
  const int64_t Wg = s_stand_ins.size(3);
  const at::Tensor q = grid_index.clamp_min(0);
  const at::Tensor index = q.div(Wg, "floor").mul(stride * s.Ws).add(q.remainder(Wg).mul(stride));
  field.narrow(1, s.t_row0, s.t_rows_h).copy_(index.masked_fill(grid_index.lt(0), -1));
  return field;
}

}  // namespace npsynth
