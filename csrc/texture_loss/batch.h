#pragma once
// Host-side glue of texture_loss shared by the CPU and CUDA entry points: the kernel arguments, the mean
// over masked targets, and the gradient scale, all as tensor ops so CUDA never waits on the host.
#include <ATen/core/Tensor.h>

#include "common/patch_math.h"

namespace npsynth {

// The matched centres' rows and columns in the source map (TextureBatch::match_y, match_x), as tensor ops
// on the index's device. Where the mask is off the index may hold anything; those entries are never read.
struct TextureMatches {
  at::Tensor y, x;
  TextureMatches(const at::Tensor& index, int64_t Ws)
      : y(index.div(Ws, "floor").contiguous()), x(index.remainder(Ws).contiguous()) {}
};

// The kernels' view of the inputs. `matches` must live until those kernels are launched: on the CPU they
// run before the call returns; on CUDA the caching allocator does not hand its memory out again before
// the kernels queued on the stream that freed it have run.
template <typename T>
TextureBatch<T> texture_batch(const at::Tensor& target, const at::Tensor& source, const at::Tensor& index,
                              const at::Tensor& target_mask, int64_t patch_size, const TextureMatches& matches) {
  return TextureBatch<T>{target.data_ptr<T>(), source.data_ptr<T>(), target_mask.data_ptr<bool>(),
                         index.data_ptr<int64_t>(), matches.y.data_ptr<int64_t>(), matches.x.data_ptr<int64_t>(),
                         target.size(1), target.size(2), target.size(3), source.size(2), source.size(3),
                         static_cast<int>(patch_size / 2)};
}

// Number of masked targets, at least 1 so an empty mask gives a zero loss rather than 0/0.
inline at::Tensor texture_target_count(const at::Tensor& target_mask) { return target_mask.sum().clamp_min(1); }

// mean_i ||P_i - P_nn(i)||^2 from the per-position terms (zero off the mask): one ordered sum.
inline at::Tensor texture_loss_mean(const at::Tensor& terms, const at::Tensor& target_mask) {
  return terms.sum().div(texture_target_count(target_mask).to(terms.scalar_type()));
}

// d loss / d term-gradient: 2 * grad / N, a 0-dim tensor on the loss's device.
inline at::Tensor texture_grad_scale(const at::Tensor& grad, const at::Tensor& target_mask) {
  return grad.reshape({}).mul(2).div(texture_target_count(target_mask).to(grad.scalar_type()));
}

}  // namespace npsynth
