// The fiber scheduler behind the CUDA emulator (see scheduler.h for the model).
#include "cuda_emulation/scheduler.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <c10/util/Exception.h>

namespace npsynth::emu {

thread_local const ThreadCoords* running_thread = nullptr;

namespace {

constexpr int kWarpSize = 32;
constexpr unsigned int kFullWarp = 0xffffffffu;
constexpr int kMaxBlockThreads = 1024;
constexpr unsigned int kMaxGridYZ = 65535;
constexpr size_t kStackBytes = 256 << 10;
constexpr size_t kGuardBytes = 4096;  // below each stack, unmapped: an overflow faults instead of corrupting

// One emulated thread: its context, its stack (owned by the OS thread's pool) and its coordinates.
struct Fiber {
  ucontext_t context;
  char* stack = nullptr;
  ThreadCoords coords;
  bool done = false;
};

// The exchange slots and the arrival count of one warp's shuffles.
struct Warp {
  uint64_t words[kWarpSize];
  int lane_masks[kWarpSize];
  int arrived = 0, exited = 0;
  uint64_t generation = 0;
};

// One block in flight on this OS thread.
struct Block {
  std::vector<Fiber>* fibers;
  std::vector<Warp> warps;
  int threads = 0, live = 0, arrived = 0;
  uint64_t generation = 0;  // of the block barrier
  uint64_t progress = 0;    // arrivals, releases and exits: a round without any means a deadlock
  const std::function<void()>* body = nullptr;
  std::string error;  // set when a thread failed: the block stops
};

thread_local ucontext_t scheduler_context;
thread_local Block* running_block = nullptr;
thread_local Fiber* running_fiber = nullptr;

// This OS thread's fibers, with their stacks, reused by every block it runs.
std::vector<Fiber>& fiber_pool(int threads) {
  thread_local std::vector<Fiber> pool;
  while (static_cast<int>(pool.size()) < threads) {
    void* region = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
    TORCH_CHECK(region != MAP_FAILED, "CUDA emulation: cannot map a fiber stack");
    mprotect(region, kGuardBytes, PROT_NONE);
    pool.emplace_back();
    pool.back().stack = static_cast<char*>(region) + kGuardBytes;
  }
  return pool;
}

// Back to the scheduler; returns when the scheduler resumes this fiber.
void yield() { swapcontext(&running_fiber->context, &scheduler_context); }

// Records the first failure of the block and leaves the fiber for good: the scheduler stops the block.
[[noreturn]] void fail(const std::string& what) {
  Block& b = *running_block;
  const ThreadCoords& c = running_fiber->coords;
  if (b.error.empty()) {
    b.error = what + " (block (" + std::to_string(c.block.x) + ", " + std::to_string(c.block.y) + ", " +
              std::to_string(c.block.z) + "), thread (" + std::to_string(c.thread.x) + ", " +
              std::to_string(c.thread.y) + ", " + std::to_string(c.thread.z) + "))";
  }
  for (;;) yield();
}

int linear_thread(const ThreadCoords& c) {
  return static_cast<int>(c.thread.x + c.block_dim.x * (c.thread.y + c.block_dim.y * c.thread.z));
}

void fiber_main() {
  (*running_block->body)();
  Block& b = *running_block;
  Warp& w = b.warps[linear_thread(running_fiber->coords) / kWarpSize];
  if (b.arrived > 0) fail("CUDA emulation: a thread exited while others wait at __syncthreads (divergent barrier)");
  if (w.arrived > 0) fail("CUDA emulation: a lane exited while its warp waits at a shuffle");
  running_fiber->done = true;
  --b.live;
  ++w.exited;
  ++b.progress;
  yield();  // never resumed: the scheduler skips finished fibers
}

// Runs every thread of one block to its end, or until one fails; returns the failure, if any.
std::string run_block(Dim3 grid, Dim3 block_dim, Index3 block_idx, const std::function<void()>& body) {
  const int threads = static_cast<int>(block_dim.x * block_dim.y * block_dim.z);
  Block b;
  b.fibers = &fiber_pool(threads);
  b.warps.resize((threads + kWarpSize - 1) / kWarpSize);
  b.threads = b.live = threads;
  b.body = &body;
  for (int t = 0; t < threads; ++t) {
    Fiber& f = (*b.fibers)[t];
    f.coords = ThreadCoords{{t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y)},
                            block_idx, block_dim, grid};
    f.done = false;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, &fiber_main, 0);
  }
  running_block = &b;
  // Rounds over the live threads, alternately forwards and backwards, so that no thread is always first
  // past a barrier.
  for (int round = 0; b.live > 0 && b.error.empty(); ++round) {
    const uint64_t before = b.progress;
    for (int k = 0; k < threads && b.error.empty(); ++k) {
      Fiber& f = (*b.fibers)[round % 2 == 0 ? k : threads - 1 - k];
      if (f.done) continue;
      running_fiber = &f;
      running_thread = &f.coords;
      swapcontext(&scheduler_context, &f.context);
    }
    if (b.error.empty() && b.live > 0 && b.progress == before) {
      b.error = "CUDA emulation: deadlock: the threads of a block wait at barriers that can never all be reached";
    }
  }
  running_block = nullptr;
  running_fiber = nullptr;
  running_thread = nullptr;
  return b.error;
}

// Waits at a barrier of `expected` threads whose state is (arrived, generation).
void arrive(int& arrived, uint64_t& generation, int expected) {
  ++running_block->progress;
  const uint64_t mine = generation;
  if (++arrived == expected) {
    arrived = 0;
    ++generation;
    return;
  }
  while (generation == mine) yield();
}

}  // namespace

void run_grid(Dim3 grid, Dim3 block, const std::function<void()>& thread_body) {
  const int64_t threads = int64_t{block.x} * block.y * block.z;
  TORCH_CHECK(threads >= 1 && threads <= kMaxBlockThreads, "CUDA emulation: a block of ", threads,
              " threads is outside CUDA's 1..", kMaxBlockThreads);
  TORCH_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.y <= kMaxGridYZ && grid.z <= kMaxGridYZ,
              "CUDA emulation: grid (", grid.x, ", ", grid.y, ", ", grid.z, ") is outside CUDA's limits");
  const int64_t blocks = int64_t{grid.x} * grid.y * grid.z;
  std::mutex lock;
  std::string error;
  std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t l = 0; l < blocks; ++l) {
    if (failed.load()) continue;
    const Index3 idx{static_cast<unsigned int>(l % grid.x), static_cast<unsigned int>((l / grid.x) % grid.y),
                     static_cast<unsigned int>(l / (int64_t{grid.x} * grid.y))};
    std::string e = run_block(grid, block, idx, thread_body);
    if (!e.empty()) {
      const std::lock_guard<std::mutex> guard(lock);
      if (!failed.exchange(true)) error = std::move(e);
    }
  }
  TORCH_CHECK(!failed.load(), error);
}

void sync_block() {
  Block& b = *running_block;
  if (b.live < b.threads) fail("CUDA emulation: __syncthreads after some threads of the block exited (divergent barrier)");
  arrive(b.arrived, b.generation, b.threads);
}

uint64_t warp_xor_exchange(uint64_t word, unsigned int member_mask, int lane_mask) {
  Block& b = *running_block;
  const int t = linear_thread(running_fiber->coords), lane = t % kWarpSize;
  Warp& w = b.warps[t / kWarpSize];
  if (member_mask != kFullWarp) fail("CUDA emulation: only full-warp shuffles (member mask 0xffffffff) are emulated");
  if ((t / kWarpSize + 1) * kWarpSize > b.threads) fail("CUDA emulation: a shuffle in a warp of fewer than 32 threads");
  if (lane_mask < 0 || lane_mask >= kWarpSize) fail("CUDA emulation: shuffle lane mask outside 0..31");
  if (w.exited > 0) fail("CUDA emulation: a shuffle after some lanes of the warp exited");
  w.words[lane] = word;
  w.lane_masks[lane] = lane_mask;
  arrive(w.arrived, w.generation, kWarpSize);
  for (int other = 0; other < kWarpSize; ++other) {
    if (w.lane_masks[other] != lane_mask) fail("CUDA emulation: the lanes of a warp shuffle with different offsets");
  }
  const uint64_t got = w.words[lane ^ lane_mask];
  arrive(w.arrived, w.generation, kWarpSize);  // nobody overwrites a slot before every lane has read
  return got;
}

void kernel_assert_failed(const char* message, const char* condition, const char* file, int line) {
  fail(std::string("device-side assert triggered (emulated CUDA): ") + message + " [" + condition + " at " + file +
       ":" + std::to_string(line) + "]");
}

}  // namespace npsynth::emu
