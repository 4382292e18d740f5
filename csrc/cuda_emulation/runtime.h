#pragma once
// The CUDA built-ins the kernels of csrc/cuda/ use, for the host compiler: a .cu file included by a
// csrc/cuda_emulation/*_emulated.cpp file (which defines NPS_CUDA_EMULATION) compiles into CPU code run
// by the fiber scheduler of scheduler.h. cuda/backend.cuh includes this header instead of the CUDA
// runtime, so the kernels' source is the same in both builds; nvcc never sees this file.
#if defined(__CUDACC__)
#error "cuda_emulation/runtime.h is the host emulator of CUDA: nvcc must compile the real runtime instead"
#endif

#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include <c10/core/Device.h>
#include <torch/library.h>

#include "cuda_emulation/scheduler.h"

using dim3 = npsynth::emu::Dim3;
using uint3 = npsynth::emu::Index3;

#define threadIdx (::npsynth::emu::running_thread->thread)
#define blockIdx (::npsynth::emu::running_thread->block)
#define blockDim (::npsynth::emu::running_thread->block_dim)
#define gridDim (::npsynth::emu::running_thread->grid_dim)

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block's shared memory: its threads are fibers of one OS thread, which runs one block at a time.
#define __shared__ static thread_local

inline void __syncthreads() { ::npsynth::emu::sync_block(); }

template <typename T>
T __shfl_xor_sync(unsigned int member_mask, T value, int lane_mask) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(uint64_t), "emulated shuffles move 8 bytes");
  uint64_t word = 0;
  std::memcpy(&word, &value, sizeof(T));
  word = ::npsynth::emu::warp_xor_exchange(word, member_mask, lane_mask);
  std::memcpy(&value, &word, sizeof(T));
  return value;
}

// CUDA's device-side min and max over mixed integer types.
template <typename A, typename B>
std::common_type_t<A, B> min(A a, B b) {
  return b < a ? b : a;
}
template <typename A, typename B>
std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}

namespace npsynth::emu {

// Emulated launches run to completion before they return: one in-order stream, nothing to wait for.
struct Stream {};

template <typename... Params>
class KernelLaunch {
 public:
  KernelLaunch(void (*kernel)(Params...), Dim3 grid, Dim3 block) : kernel_(kernel), grid_(grid), block_(block) {}

  // The arguments are copied once, as CUDA copies kernel parameters, and every thread calls the kernel
  // with them.
  template <typename... Args>
  void operator()(Args&&... args) const {
    const std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
    run_grid(grid_, block_, [&] { std::apply(kernel_, params); });
  }

 private:
  void (*kernel_)(Params...);
  Dim3 grid_, block_;
};

template <typename... Params>
KernelLaunch<Params...> launch(void (*kernel)(Params...), Dim3 grid, Dim3 block, Stream) {
  return KernelLaunch<Params...>(kernel, grid, block);
}

// CUDA's device guard and stream: CPU tensors need neither.
struct DeviceGuard {
  explicit DeviceGuard(c10::Device) {}
};
inline Stream current_stream() { return Stream{}; }
inline int64_t multiprocessor_count() { return kEmulatedMultiprocessors; }

}  // namespace npsynth::emu

namespace npsynth {
namespace gpu = emu;
}

#define NPS_LAUNCH(kernel, grid, block, stream) ::npsynth::emu::launch(kernel, grid, block, stream)
#define NPS_LAUNCH_CHECK() \
  do {                     \
  } while (0)  // a failed emulated launch has already thrown from run_grid
#define NPS_KERNEL_ASSERT(cond, msg)                                                     \
  do {                                                                                   \
    if (!(cond)) ::npsynth::emu::kernel_assert_failed(msg, #cond, __FILE__, __LINE__); \
  } while (0)
// The emulated kernels serve CPU tensors under their own op namespace (schemas in npsynth.cpp).
#define NPS_CUDA_OPS "npsynth_emu"
#define NPS_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(npsynth_emu, CPU, m)
