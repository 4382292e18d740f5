#pragma once
// Input validation shared by the CPU and CUDA entry points of every op. The Python wrappers in
// npsynth_ext/ops.py check the same things first with friendlier messages; these checks guard callers
// of torch.ops.npsynth.* directly. Every tensor arrives batched: features [B, C, H, W], masks [B, H, W].
// The check_* functions read only metadata; the two that read the data (check_has_valid_source,
// check_index_in_range) wait for the device, so the CUDA entry points that run inside the fill's
// iterations (patchmatch, texture_loss) assert the same conditions in their kernels instead.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "common/patch_math.h"

namespace npsynth {

// NPS_CHECK(cond, parts...) is TORCH_CHECK with the message joined by std::string and std::to_string.
// TORCH_CHECK's own formatting (c10::str) writes through a std::ostringstream compiled into this
// extension, and on torch 2.11 with gcc 13.3 (Ubuntu 24.04) any ostringstream in extension code
// segfaults: a failed check would crash the process instead of raising. A plain const char* message
// takes TORCH_CHECK's path that formats nothing.
namespace message {
template <typename T, std::enable_if_t<std::is_convertible_v<const T&, std::string_view>, int> = 0>
std::string part(const T& text) {
  const std::string_view view = text;
  return std::string(view);
}
inline std::string part(at::ScalarType t) { return c10::toString(t); }
inline std::string part(const c10::Device& d) { return d.str(); }  // formatted inside libc10
inline std::string part(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}
template <typename T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
std::string part(T v) { return std::to_string(v); }

template <typename... Parts>
std::string join(const Parts&... parts) {
  std::string out;
  ((out += part(parts)), ...);
  return out;
}
}  // namespace message

#define NPS_CHECK(cond, ...)                                                     \
  do {                                                                          \
    if (!(cond)) {                                                              \
      const std::string nps_check_message_ = ::npsynth::message::join(__VA_ARGS__); \
      TORCH_CHECK(false, nps_check_message_.c_str());                           \
    }                                                                           \
  } while (0)

inline void check_features(const at::Tensor& t, const char* name) {
  NPS_CHECK(t.dim() == 4, "npsynth: ", name, " must be [B, C, H, W], got ", t.dim(), " dims");
  NPS_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "npsynth: ", name,
              " must be float32 or float64, got ", t.scalar_type());
  NPS_CHECK(t.is_contiguous(), "npsynth: ", name, " must be contiguous");
}

inline void check_mask(const at::Tensor& m, const at::Tensor& fmap, const char* name) {
  NPS_CHECK(m.scalar_type() == at::kBool, "npsynth: ", name, " must be bool, got ", m.scalar_type());
  NPS_CHECK(m.dim() == 3 && m.size(0) == fmap.size(0) && m.size(1) == fmap.size(2) && m.size(2) == fmap.size(3),
              "npsynth: ", name, " must be [B, H, W] = ", fmap.size(0), "x", fmap.size(2), "x", fmap.size(3),
              ", got ", m.sizes());
  NPS_CHECK(m.is_contiguous(), "npsynth: ", name, " must be contiguous");
  NPS_CHECK(m.device() == fmap.device(), "npsynth: ", name, " is on ", m.device(), " but the features on ",
              fmap.device());
}

inline void check_pair(const at::Tensor& target, const at::Tensor& source, int64_t patch_size) {
  check_features(target, "target");
  check_features(source, "source");
  NPS_CHECK(source.device() == target.device(), "npsynth: source is on ", source.device(), " but target on ",
              target.device());
  NPS_CHECK(source.scalar_type() == target.scalar_type(), "npsynth: source is ", source.scalar_type(),
              " but target is ", target.scalar_type());
  NPS_CHECK(source.size(0) == target.size(0), "npsynth: batch sizes differ: target ", target.size(0),
              ", source ", source.size(0));
  NPS_CHECK(source.size(1) == target.size(1), "npsynth: channel counts differ: target ", target.size(1),
              ", source ", source.size(1));
  NPS_CHECK(patch_size > 0 && patch_size % 2 == 1, "npsynth: patch_size must be odd and positive, got ",
              patch_size);
}

inline int parse_metric(std::string_view metric) {
  if (metric == "l2") return kMetricL2;
  if (metric == "cosine") return kMetricCosine;
  NPS_CHECK(false, "npsynth: metric must be 'l2' or 'cosine', got '", metric, "'");
}

inline void check_patch_nn(const at::Tensor& target, const at::Tensor& source, const at::Tensor& target_mask,
                           const at::Tensor& source_valid, int64_t patch_size) {
  check_pair(target, source, patch_size);
  check_mask(target_mask, target, "target_mask");
  check_mask(source_valid, source, "source_valid");
}

// The messages of the data checks, which the CUDA kernels assert too.
#define NPS_NO_VALID_SOURCE "npsynth: source_valid has no valid source patch (in at least one batch item)"
#define NPS_INDEX_OUT_OF_RANGE "npsynth: index must lie in [0, Hs * Ws) wherever target_mask is set"

inline void check_has_valid_source(const at::Tensor& source_valid) {
  if (source_valid.size(0) > 0) NPS_CHECK(source_valid.flatten(1).any(1).all().item<bool>(), NPS_NO_VALID_SOURCE);
}

// A field of source indices laid over the target: int64, target_mask's shape, contiguous, same device.
inline void check_index_map(const at::Tensor& index, const at::Tensor& target_mask, const at::Tensor& target,
                            const char* name) {
  NPS_CHECK(index.scalar_type() == at::kLong, "npsynth: ", name, " must be int64, got ", index.scalar_type());
  NPS_CHECK(index.sizes() == target_mask.sizes(), "npsynth: ", name, " must have target_mask's shape ",
              target_mask.sizes(), ", got ", index.sizes());
  NPS_CHECK(index.is_contiguous(), "npsynth: ", name, " must be contiguous");
  NPS_CHECK(index.device() == target.device(), "npsynth: ", name, " is on ", index.device(), " but target on ",
              target.device());
}

// patchmatch takes patch_nn's inputs plus an optional starting field shaped like target_mask.
inline void check_patchmatch(const at::Tensor& target, const at::Tensor& source, const at::Tensor& target_mask,
                             const at::Tensor& source_valid, int64_t patch_size,
                             const std::optional<at::Tensor>& init_index, int64_t iters, int64_t radius) {
  check_patch_nn(target, source, target_mask, source_valid, patch_size);
  if (init_index.has_value()) check_index_map(*init_index, target_mask, target, "init_index");
  NPS_CHECK(iters >= 0, "npsynth: iters must be >= 0, got ", iters);
  NPS_CHECK(radius >= 0, "npsynth: radius must be >= 0 (0: the whole source map), got ", radius);
}

inline void check_texture_loss(const at::Tensor& target, const at::Tensor& source, const at::Tensor& index,
                               const at::Tensor& target_mask, int64_t patch_size) {
  check_pair(target, source, patch_size);
  check_mask(target_mask, target, "target_mask");
  check_index_map(index, target_mask, target, "index");
}

inline void check_index_in_range(const at::Tensor& source, const at::Tensor& index, const at::Tensor& target_mask) {
  const at::Tensor used = index.masked_select(target_mask);
  if (used.numel() > 0) {
    const int64_t n_source = source.size(2) * source.size(3);
    NPS_CHECK(used.min().item<int64_t>() >= 0 && used.max().item<int64_t>() < n_source,
                "npsynth: index must lie in [0, ", n_source, ") wherever target_mask is set");
  }
}

}  // namespace npsynth
