// texture_loss and its backward on CUDA: one thread per output element around the shared per-element math
// of common/patch_math.h (the same functions the CPU loops call). The backward is a gather, so it needs no
// atomics and is deterministic; the loss is one ordered reduction of per-position terms.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/patch_math.h"
#include "cuda/launch.cuh"
#include "op_checks.h"
#include "texture_batch.h"

namespace npsynth {
namespace {

template <typename T>
__global__ void texture_terms_kernel(TextureBatch<T> g, int64_t n, T* terms) {
  NPS_GRID_STRIDE(l, n) { terms[l] = texture_term_at(g, l); }
}

template <typename T>
__global__ void texture_grad_kernel(TextureBatch<T> g, int64_t n, const T* scale, T* grad_target) {
  NPS_GRID_STRIDE(l, n) { grad_target[l] = *scale * texture_grad_at(g, l); }
}

at::Tensor texture_loss_cuda(const at::Tensor& target, const at::Tensor& source, const at::Tensor& index,
                             const at::Tensor& target_mask, int64_t patch_size) {
  check_texture_loss(target, source, index, target_mask, patch_size);
  const c10::cuda::CUDAGuard guard(target.device());
  at::Tensor terms = at::empty(target_mask.sizes(), target.options());
  const int64_t n = terms.numel();
  if (n > 0) {
    AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "texture_loss_cuda", [&] {
      texture_terms_kernel<scalar_t><<<grid_for(n), kBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
          texture_batch<scalar_t>(target, source, index, target_mask, patch_size), n, terms.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return texture_loss_mean(terms, target_mask);
}

at::Tensor texture_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& target, const at::Tensor& source,
                                      const at::Tensor& index, const at::Tensor& target_mask, int64_t patch_size) {
  check_texture_loss(target, source, index, target_mask, patch_size);
  TORCH_CHECK(grad.numel() == 1, "npsynth: texture_loss_backward expects a scalar grad, got ", grad.sizes());
  const c10::cuda::CUDAGuard guard(target.device());
  at::Tensor grad_target = at::empty_like(target);
  const int64_t n = grad_target.numel();
  if (n > 0) {
    const at::Tensor scale = texture_grad_scale(grad, target_mask).to(target.scalar_type()).contiguous();
    AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "texture_loss_backward_cuda", [&] {
      texture_grad_kernel<scalar_t><<<grid_for(n), kBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
          texture_batch<scalar_t>(target, source, index, target_mask, patch_size), n, scale.data_ptr<scalar_t>(),
          grad_target.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return grad_target;
}

}  // namespace

TORCH_LIBRARY_IMPL(npsynth, CUDA, m) {
  m.impl("texture_loss", &texture_loss_cuda);
  m.impl("texture_loss_backward", &texture_loss_backward_cuda);
}

}  // namespace npsynth
