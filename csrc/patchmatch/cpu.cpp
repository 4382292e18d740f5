// PatchMatch on the CPU: the lines of each pass are shared out among OpenMP threads (lines are independent,
// so the field does not depend on how they are shared out), around the per-target steps of
// common/patchmatch_math.h that the CUDA kernels run too.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdlib>
#include <optional>

#include "common/patchmatch_math.h"
#include "common/op_checks.h"
#include "patchmatch/batch.h"

namespace npsynth {
namespace {

// One thread sums a dot product on its own: the total is its partial sum.
struct OwnSum {
  template <typename T>
  NPS_INLINED T operator()(T partial) const {
    return partial;
  }
};

// A line walk; the loop inside is inlined whole (NPS_INLINED), so each variant compiles it for its own
// instruction set. The build targets baseline x86-64 (SSE2, 4 floats a step); where the CPU has AVX2 and
// FMA, the dot products run 8 floats a step with fused multiply-adds. The two round differently, so a
// field repeats exactly on one kind of CPU, not across kinds.
template <typename T>
void walk_line(const PatchmatchItem<T>& m, const PatchmatchShape& s, PatchmatchPass pass, int64_t line) {
  pm_walk_line<1>(m, s, pass, line, 0, OwnSum{});
}

#if defined(__GNUC__) && defined(__x86_64__)
template <typename T>
__attribute__((target("avx2,fma"))) void walk_line_avx2(const PatchmatchItem<T>& m, const PatchmatchShape& s,
                                                        PatchmatchPass pass, int64_t line) {
  pm_walk_line<1>(m, s, pass, line, 0, OwnSum{});
}

// NPSYNTH_BASELINE_CPU=1 keeps the baseline walk even on an AVX2 CPU, so both variants can be tested.
bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          std::getenv("NPSYNTH_BASELINE_CPU") == nullptr;
  return has;
}
#endif

template <typename T>
void (*line_walker())(const PatchmatchItem<T>&, const PatchmatchShape&, PatchmatchPass, int64_t) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (cpu_has_avx2()) return &walk_line_avx2<T>;
#endif
  return &walk_line<T>;
}

template <typename T>
void patchmatch_cpu_run(PatchmatchTensors& t, const PatchmatchShape& s, int64_t B, int64_t iters) {
  const PatchmatchBatch<T> g = t.batch<T>();
  const int64_t* init = t.start.data_ptr<int64_t>();
  const int64_t nt = s.Ht * s.Wt;
  at::parallel_for(0, B * nt, 64, [&](int64_t a, int64_t b) {
    for (int64_t l = a; l < b; ++l)
      pm_start<1>(pm_item(g, s, l / nt), s, init + (l / nt) * nt, l % nt, 0, OwnSum{});
  });
  const auto walk = line_walker<T>();
  for_each_pass(t, s, iters, [&](PatchmatchPass pass, int64_t lines) {
    // Lines differ in how many targets they hold: hand them out one at a time.
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t line = 0; line < B * lines; ++line) walk(pm_item(g, s, line / lines), s, pass, line % lines);
  });
  at::parallel_for(0, B * nt, 64, [&](int64_t a, int64_t b) {
    for (int64_t l = a; l < b; ++l) pm_finish(g, s, l);
  });
}

std::tuple<at::Tensor, at::Tensor> patchmatch_cpu(const at::Tensor& target, const at::Tensor& source,
                                                  const at::Tensor& target_mask, const at::Tensor& source_valid,
                                                  int64_t patch_size, c10::string_view metric,
                                                  const std::optional<at::Tensor>& init_index, int64_t iters,
                                                  int64_t radius, int64_t seed) {
  check_patchmatch(target, source, target_mask, source_valid, patch_size, init_index, iters, radius);
  check_has_valid_source(source_valid);
  const PatchmatchShape s =
      patchmatch_shape(target, source, target_mask, patch_size, parse_metric(metric), radius, seed, true);
  PatchmatchTensors t("npsynth", target, source, target_mask, source_valid, patch_size, metric, init_index, s);
  AT_DISPATCH_FLOATING_TYPES(target.scalar_type(), "patchmatch_cpu", [&] {
    patchmatch_cpu_run<scalar_t>(t, s, target.size(0), iters);
  });
  return {t.index, t.dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(npsynth, CPU, m) { m.impl("patchmatch", &patchmatch_cpu); }

}  // namespace npsynth
