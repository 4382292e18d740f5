#pragma once
// The CUDA execution model on the host: every thread of a block is a cooperative fiber (ucontext), and the
// fibers of a block take turns on one OS thread, switching only where CUDA lets threads wait for each
// other: __syncthreads and warp shuffles. A thread therefore runs on past any point that has no barrier,
// ahead of its block-mates, so a missing __syncthreads reads stale shared memory and a wrong shuffle
// offset reads the wrong lane. Blocks run one after another on each OS thread (several OS threads share
// the grid), so `static thread_local` storage is one block's __shared__ memory.
//
// Only ever compiled by the host compiler (setup.py builds it with NPSYNTH_CUDA_EMULATION=1).
#include <cstdint>
#include <functional>

namespace npsynth::emu {

struct Dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr Dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct Index3 {
  unsigned int x, y, z;
};

// What the running emulated thread sees of its launch (threadIdx, blockIdx, blockDim, gridDim).
struct ThreadCoords {
  Index3 thread, block;
  Dim3 block_dim, grid_dim;
};

// The running emulated thread's coordinates; set by the scheduler before it resumes a fiber.
extern thread_local const ThreadCoords* running_thread;

// Runs `thread_body` once in every thread of every block of the grid. Throws c10::Error when a thread
// failed a kernel assert or broke the barrier rules (a barrier not reached by the whole block or warp,
// lanes of a warp shuffling with different offsets), or when the launch shape breaks CUDA's limits.
void run_grid(Dim3 grid, Dim3 block, const std::function<void()>& thread_body);

// __syncthreads: waits until every thread of the block has arrived.
void sync_block();

// __shfl_xor_sync on an 8-byte word: every lane of the warp hands in `word` and gets back the word of
// lane (its lane ^ lane_mask). All 32 lanes must take part, with the full member mask and the same
// lane_mask.
uint64_t warp_xor_exchange(uint64_t word, unsigned int member_mask, int lane_mask);

// A failed kernel assert: ends the whole launch, which then throws from run_grid.
[[noreturn]] void kernel_assert_failed(const char* message, const char* condition, const char* file, int line);

// The number of multiprocessors the emulated device reports: small, so that the launch shapes the kernels
// pick for a small GPU (several blocks per multiprocessor, source splits) show up at test sizes.
constexpr int kEmulatedMultiprocessors = 4;

}  // namespace npsynth::emu
