#pragma once
// Where patchmatch starts when the caller gives no starting field: an exact search among cheap stand-ins
// of the patches (start.cpp), shared by the CPU and CUDA entry points.
//
// Why not a random start: on the VGG features of photos, neighbouring targets seldom have neighbouring
// best matches, so propagation has little to spread and PatchMatch from random stalls well above the exact
// mean distance (docs/benchmarks.md has the measurements). The stand-ins:
//   * each position's C channels are projected onto the d leading principal directions of the source's
//     channels, d * patch_size^2 <= start.cpp's kStartDims (16 channels for 3x3 patches);
//   * a patch's stand-in is its k x k block of projected positions (zero-padded at the borders, as
//     patches are);
//   * sources are taken only on a grid of stride kStartStride (2): the random search's last, radius-1 window
//     reaches the sources in between.
// Every masked target then gets its stand-in's exact nearest neighbour (patch_nn, patch_size 1, the same
// metric). The start alone lies on the grid, often a step from the best, with rough stand-ins; the
// iterations that follow close most of that gap, and the start's GEMMs are many times shorter, over
// fewer pairs, than patch_nn's.
#include <cstdint>
#include <string_view>

#include <ATen/core/Tensor.h>

#include "common/patchmatch_math.h"

namespace npsynth {

// The starting field [B, Ht, Wt]: each masked target's nearest source by stand-in, -1 off the mask; the
// search is the patch_nn of op namespace `ops` ("npsynth", or "npsynth_emu" for the emulated CUDA kernels).
at::Tensor patchmatch_start_field(std::string_view ops, const at::Tensor& target, const at::Tensor& source,
                                  const at::Tensor& target_mask, const at::Tensor& source_valid,
                                  int64_t patch_size, std::string_view metric, const PatchmatchShape& s);

}  // namespace npsynth
