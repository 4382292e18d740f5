// texture_loss and its backward on the CPU: OpenMP loops (via at::parallel_for) around the shared
// per-element math of common/patch_math.h. Every output element is written by exactly one iteration and
// the loss is one ordered sum, so results are identical run to run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "common/patch_math.h"
#include "common/op_checks.h"
#include "texture_loss/batch.h"

namespace npsynth {
namespace {

at::Tensor texture_loss_cpu(const at::Tensor& target, const at::Tensor& source, const at::Tensor& index,
                            const at::Tensor& target_mask, int64_t patch_size) {
  check_texture_loss(target, source, index, target_mask, patch_size);
  check_index_in_range(source, index, target_mask);
  at::Tensor terms = at::empty(target_mask.sizes(), target.options());
  const TextureMatches matches(index, source.size(3));
  AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "texture_loss_cpu", [&] {
    const auto g = texture_batch<scalar_t>(target, source, index, target_mask, patch_size, matches);
    scalar_t* out = terms.data_ptr<scalar_t>();
    at::parallel_for(0, terms.numel(), 64, [&](int64_t a, int64_t b) {
      for (int64_t l = a; l < b; ++l) out[l] = texture_term_at(g, l);
    });
  });
  return texture_loss_mean(terms, target_mask);
}

at::Tensor texture_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& target, const at::Tensor& source,
                                     const at::Tensor& index, const at::Tensor& target_mask, int64_t patch_size) {
  check_texture_loss(target, source, index, target_mask, patch_size);
  check_index_in_range(source, index, target_mask);
  NPS_CHECK(grad.numel() == 1, "npsynth: texture_loss_backward expects a scalar grad, got ", grad.sizes());
  const int64_t C = target.size(1), Ht = target.size(2), Wt = target.size(3), radius = patch_size / 2;
  at::Tensor grad_target = at::empty_like(target);
  // Only rows within `radius` of a masked row receive gradient: the rest of the map is set to zero, so
  // every element is written once.
  const at::Tensor row_used = target_mask.any(2).contiguous();  // [B, Ht]
  const TextureMatches matches(index, source.size(3));
  AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "texture_loss_backward_cpu", [&] {
    const auto g = texture_batch<scalar_t>(target, source, index, target_mask, patch_size, matches);
    const scalar_t scale = texture_grad_scale(grad, target_mask).item<scalar_t>();
    const bool* used = row_used.data_ptr<bool>();
    scalar_t* out = grad_target.data_ptr<scalar_t>();
    at::parallel_for(0, grad_target.numel() / Wt, 1, [&](int64_t a, int64_t b) {
      for (int64_t row = a; row < b; ++row) {  // row = flat (b, c, y)
        const int64_t y = row % Ht, bc = row / Ht, bi = bc / C;
        bool near = false;
        for (int64_t py = std::max<int64_t>(0, y - radius); py <= std::min(Ht - 1, y + radius); ++py)
          near = near || used[bi * Ht + py];
        if (!near) {
          std::fill(out + row * Wt, out + (row + 1) * Wt, scalar_t(0));
          continue;
        }
        for (int64_t x = 0; x < Wt; ++x) out[row * Wt + x] = scale * texture_grad_at(g, bc, y, x);
      }
    });
  });
  return grad_target;
}

}  // namespace

TORCH_LIBRARY_IMPL(npsynth, CPU, m) {
  m.impl("texture_loss", &texture_loss_cpu);
  m.impl("texture_loss_backward", &texture_loss_backward_cpu);
}

}  // namespace npsynth
