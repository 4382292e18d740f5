// texture_loss and its backward on CUDA: one thread per output element around the shared per-element math
// of common/patch_math.h (the same functions the CPU loops call). The backward is a gather, so it needs no
// atomics and is deterministic; the loss is one ordered reduction of per-position terms.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include "common/patch_math.h"
#include "common/op_checks.h"
#include "texture_loss/batch.h"
#include "cuda/launch.cuh"

namespace npsynth {
namespace {

// The index range is asserted on the device (the CPU checks it on the host): a check on the host would
// wait for the device on every call, inside the fill's iterations. Each kernel checks every position.
template <typename T>
__global__ void texture_terms_kernel(TextureBatch<T> g, int64_t n, T* terms) {
  NPS_GRID_STRIDE(l, n) {
    NPS_KERNEL_ASSERT(texture_index_ok(g, l), NPS_INDEX_OUT_OF_RANGE);
    terms[l] = texture_term_at(g, l);
  }
}

// n: elements of the gradient; the first `positions` of them also check the index of that position.
template <typename T>
__global__ void texture_grad_kernel(TextureBatch<T> g, int64_t n, int64_t positions, const T* scale, T* grad_target) {
  NPS_GRID_STRIDE(l, n) {
    if (l < positions) NPS_KERNEL_ASSERT(texture_index_ok(g, l), NPS_INDEX_OUT_OF_RANGE);
    grad_target[l] = *scale * texture_grad_at(g, l);
  }
}

at::Tensor texture_loss_cuda(const at::Tensor& target, const at::Tensor& source, const at::Tensor& index,
                             const at::Tensor& target_mask, int64_t patch_size) {
  check_texture_loss(target, source, index, target_mask, patch_size);
  const gpu::DeviceGuard guard(target.device());
  at::Tensor terms = at::empty(target_mask.sizes(), target.options());
  const int64_t n = terms.numel();
  if (n > 0) {
    const TextureMatches matches(index, source.size(3));
    AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "texture_loss_cuda", [&] {
      NPS_LAUNCH(texture_terms_kernel<scalar_t>, grid_for(n), kBlock, gpu::current_stream())(
          texture_batch<scalar_t>(target, source, index, target_mask, patch_size, matches), n,
          terms.data_ptr<scalar_t>());
      NPS_LAUNCH_CHECK();
    });
  }
  return texture_loss_mean(terms, target_mask);
}

at::Tensor texture_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& target, const at::Tensor& source,
                                      const at::Tensor& index, const at::Tensor& target_mask, int64_t patch_size) {
  check_texture_loss(target, source, index, target_mask, patch_size);
  NPS_CHECK(grad.numel() == 1, "npsynth: texture_loss_backward expects a scalar grad, got ", grad.sizes());
  const gpu::DeviceGuard guard(target.device());
  at::Tensor grad_target = at::empty_like(target);
  const int64_t n = grad_target.numel();
  if (n > 0) {
    const at::Tensor scale = texture_grad_scale(grad, target_mask).to(target.scalar_type()).contiguous();
    const TextureMatches matches(index, source.size(3));
    AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "texture_loss_backward_cuda", [&] {
      NPS_LAUNCH(texture_grad_kernel<scalar_t>, grid_for(n), kBlock, gpu::current_stream())(
          texture_batch<scalar_t>(target, source, index, target_mask, patch_size, matches), n, target_mask.numel(),
          scale.data_ptr<scalar_t>(),
          grad_target.data_ptr<scalar_t>());
      NPS_LAUNCH_CHECK();
    });
  }
  return grad_target;
}

}  // namespace

NPS_CUDA_LIBRARY_IMPL(m) {
  m.impl("texture_loss", &texture_loss_cuda);
  m.impl("texture_loss_backward", &texture_loss_backward_cuda);
}

}  // namespace npsynth
