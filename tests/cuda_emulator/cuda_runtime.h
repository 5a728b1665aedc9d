// A CPU emulation of the part of CUDA that bmc's generated model.cu uses, so that the very same source (kernels and
// host code) runs on a machine without a GPU: `g++ -I tests/cuda_emulator -x c++ model.cu` picks up this file
// instead of the real <cuda_runtime.h>.
//
// The execution model:
// * a launch runs its blocks on a pool of worker threads, one block at a time per worker, and returns when all
//   blocks are done (a stream is therefore always synchronized);
// * the threads of one block are cooperative fibers (ucontext) on that worker; a fiber runs until it reaches
//   __syncthreads, __syncwarp or a warp intrinsic, and only there yields to the next fiber of its block;
// * __shared__ is `static thread_local`: one copy per worker thread, so the fibers of the running block share it;
// * a warp shuffle writes each lane's value into a per-warp buffer, waits at a warp barrier, reads the source lane's
//   slot, and waits at a second warp barrier before the buffer can be reused;
// * cudaMalloc and cudaMemcpy are host allocations (filled with NaN bytes) and memcpy.
//
// Barriers count the threads that have not exited, as the hardware does. A block whose fibers all wait without any
// progress (a barrier in divergent code) aborts with a message instead of hanging.
//
// Test hooks (environment variables): BMC_EMU_NO_DEVICE=1 makes cudaGetDeviceCount report no device;
// BMC_EMU_FAIL_KERNEL=NAME makes the launch of the kernel NAME fail with cudaErrorLaunchFailure;
// BMC_EMU_WORKERS=K sets the number of worker threads (default: the hardware's, at most 8).
#pragma once

#include <ucontext.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define BMC_EMULATOR 1
#define __global__
#define __device__
#define __host__
#define __shared__ static thread_local
#define __forceinline__ inline
#define __launch_bounds__(...)
#define BMC_UNROLL

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// ---- errors ---------------------------------------------------------------------------------------------------------

typedef int cudaError_t;
enum {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchFailure = 719,
};

namespace bmc_emu {
inline cudaError_t& last_error() {
  static thread_local cudaError_t e = cudaSuccess;
  return e;
}
inline cudaError_t fail(cudaError_t e) {
  last_error() = e;
  return e;
}
}  // namespace bmc_emu

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
  }
}

inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated)";
    default: return "unknown error";
  }
}

inline cudaError_t cudaGetLastError() {
  cudaError_t e = bmc_emu::last_error();
  bmc_emu::last_error() = cudaSuccess;
  return e;
}

inline cudaError_t cudaPeekAtLastError() { return bmc_emu::last_error(); }

// ---- devices, streams, memory -----------------------------------------------------------------------------------------

typedef struct bmc_emu_stream* cudaStream_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlock = 8, cudaDevAttrMultiProcessorCount = 16 };
#define cudaStreamNonBlocking 0x01

inline cudaError_t cudaGetDeviceCount(int* count) {
  if (std::getenv("BMC_EMU_NO_DEVICE")) {
    *count = 0;
    return bmc_emu::fail(cudaErrorNoDevice);
  }
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : bmc_emu::fail(cudaErrorInvalidValue); }
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  *value = attr == cudaDevAttrMultiProcessorCount ? 4 : 48 * 1024;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
// Launches run synchronously and report their errors through cudaGetLastError: nothing is left to fail here.
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

// Device memory starts as 0xFF bytes (NaN in every float type), not the zeros of fresh host pages: a kernel that
// reads what nothing wrote shows up as NaN instead of passing by luck.
inline cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  size_t rounded = (bytes + 255) / 256 * 256;
  *ptr = std::aligned_alloc(256, rounded ? rounded : 256);
  if (!*ptr) return bmc_emu::fail(cudaErrorMemoryAllocation);
  std::memset(*ptr, 0xFF, rounded ? rounded : 256);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t = nullptr) {
  if (bytes && (!dst || !src)) return bmc_emu::fail(cudaErrorInvalidValue);
  if (bytes && dst != src) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind);
}
inline cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                     size_t height, cudaMemcpyKind, cudaStream_t = nullptr) {
  if (width > dpitch || width > spitch) return bmc_emu::fail(cudaErrorInvalidValue);
  for (size_t r = 0; r < height; ++r)
    std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t = nullptr) {
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

// ---- the execution model ----------------------------------------------------------------------------------------------

namespace bmc_emu {

constexpr size_t kStackBytes = 128 * 1024;

// Switching fibers: on x86-64 a few instructions that save the callee-saved registers (ucontext's swapcontext also
// saves the signal mask, a system call per switch, which made the emulator ten times slower); ucontext elsewhere.
#if defined(__x86_64__)
extern "C" void bmc_emu_switch(void** save_sp, void* load_sp);
__asm__(R"(
  .text
  .globl bmc_emu_switch
  .hidden bmc_emu_switch
  .type bmc_emu_switch, @function
bmc_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size bmc_emu_switch, .-bmc_emu_switch
)");

struct Context {
  void* sp = nullptr;
};
inline void switch_to(Context& save, Context& load) { bmc_emu_switch(&save.sp, load.sp); }
inline void start(Context& c, char* stack, size_t bytes, void (*entry)()) {
  auto* top = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t{15});
  *--top = 0;                                      // the entry's frame sees a call-aligned stack
  *--top = reinterpret_cast<uint64_t>(entry);      // `ret` of the first switch lands here
  for (int i = 0; i < 6; ++i) *--top = 0;          // rbp, rbx, r12-r15
  uint32_t control[2];
  __asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(control[0]), "=m"(control[1]));
  *--top = control[0] | (uint64_t{control[1] & 0xffff} << 32);
  c.sp = top;
}
#else
struct Context {
  ucontext_t uc;
};
inline void switch_to(Context& save, Context& load) { swapcontext(&save.uc, &load.uc); }
inline void start(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

struct Fiber {
  Context context;
  uint3 tid;
  int warp = 0, lane = 0;
  bool done = false;
  char* stack = nullptr;
};

struct Warp {
  int live = 0, count = 0, generation = 0;
  uint64_t slots[32];
};

struct Block {
  dim3 grid, block;
  uint3 bid;
  const std::function<void()>* kernel = nullptr;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  Context scheduler;
  int live = 0, count = 0, generation = 0;
  long progress = 0;
  std::vector<unsigned char> dynamic_smem;
};

inline thread_local Block* tl_block = nullptr;
inline thread_local Fiber* tl_fiber = nullptr;

inline void yield() { switch_to(tl_fiber->context, tl_block->scheduler); }

inline void syncthreads() {
  Block* b = tl_block;
  int generation = b->generation;
  b->progress++;
  if (++b->count == b->live) {
    b->count = 0;
    b->generation++;
    return;
  }
  while (b->generation == generation) yield();
}

inline void syncwarp() {
  Block* b = tl_block;
  Warp& w = b->warps[tl_fiber->warp];
  int generation = w.generation;
  b->progress++;
  if (++w.count == w.live) {
    w.count = 0;
    w.generation++;
    return;
  }
  while (w.generation == generation) yield();
}

inline void thread_exit() {
  Block* b = tl_block;
  Fiber* f = tl_fiber;
  f->done = true;
  b->progress++;
  b->live--;
  if (b->count > 0 && b->count == b->live) {  // the others wait at __syncthreads: release them
    b->count = 0;
    b->generation++;
  }
  Warp& w = b->warps[f->warp];
  w.live--;
  if (w.count > 0 && w.count == w.live) {
    w.count = 0;
    w.generation++;
  }
  switch_to(f->context, b->scheduler);  // never resumed
}

inline void fiber_entry() {
  (*tl_block->kernel)();
  thread_exit();
}

// Runs one block: every thread a fiber, resumed round-robin until all have exited.
inline void run_block(Block& b) {
  int threads = static_cast<int>(b.block.x * b.block.y * b.block.z);
  if (static_cast<int>(b.fibers.size()) < threads) b.fibers.resize(threads);
  int nwarps = (threads + 31) / 32;
  b.warps.assign(nwarps, Warp{});
  b.live = threads;
  b.count = 0;
  b.generation = 0;
  for (int t = 0; t < threads; ++t) {
    Fiber& f = b.fibers[t];
    if (!f.stack) f.stack = static_cast<char*>(std::malloc(kStackBytes));
    f.tid = uint3{t % b.block.x, (t / b.block.x) % b.block.y, t / (b.block.x * b.block.y)};
    f.warp = t / 32;
    f.lane = t % 32;
    f.done = false;
    b.warps[f.warp].live++;
    start(f.context, f.stack, kStackBytes, fiber_entry);
  }
  tl_block = &b;
  while (b.live > 0) {
    long before = b.progress;
    for (int t = 0; t < threads; ++t) {
      if (b.fibers[t].done) continue;
      tl_fiber = &b.fibers[t];
      switch_to(b.scheduler, b.fibers[t].context);
    }
    if (b.live > 0 && b.progress == before) {
      std::fprintf(stderr, "bmc CUDA emulator: deadlock in block (%u, %u, %u): every thread waits at a barrier that "
                   "the others never reach\n", b.bid.x, b.bid.y, b.bid.z);
      std::abort();
    }
  }
  tl_block = nullptr;
  tl_fiber = nullptr;
}

// A pool of worker threads; a launch hands them its blocks and waits until all are done.
class Pool {
 public:
  static Pool& get() {
    static Pool pool;
    return pool;
  }

  void run(dim3 grid, dim3 block, size_t smem, const std::function<void()>& kernel) {
    std::unique_lock<std::mutex> lock(mutex_);
    grid_ = grid;
    block_ = block;
    smem_ = smem;
    kernel_ = &kernel;
    total_ = static_cast<long>(grid.x) * grid.y * grid.z;
    next_ = 0;
    finished_ = 0;
    epoch_++;
    wake_.notify_all();
    done_.wait(lock, [&] { return finished_ == static_cast<int>(workers_.size()); });
    kernel_ = nullptr;
  }

 private:
  Pool() {
    unsigned n = std::thread::hardware_concurrency();
    if (const char* env = std::getenv("BMC_EMU_WORKERS")) n = static_cast<unsigned>(std::atoi(env));
    n = n < 1 ? 1 : (n > 8 ? 8 : n);
    for (unsigned i = 0; i < n; ++i) workers_.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      wake_.notify_all();
    }
    for (auto& w : workers_) w.join();
  }

  void work() {
    Block block;
    long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || epoch_ != seen; });
        if (stop_) return;
        seen = epoch_;
        block.grid = grid_;
        block.block = block_;
        block.kernel = kernel_;
        if (block.dynamic_smem.size() < smem_) block.dynamic_smem.resize(smem_);
      }
      for (long b; (b = next_.fetch_add(1)) < total_;) {
        block.bid = uint3{static_cast<unsigned>(b % block.grid.x),
                          static_cast<unsigned>((b / block.grid.x) % block.grid.y),
                          static_cast<unsigned>(b / (static_cast<long>(block.grid.x) * block.grid.y))};
        run_block(block);
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (++finished_ == static_cast<int>(workers_.size())) done_.notify_all();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  dim3 grid_, block_;
  size_t smem_ = 0;
  const std::function<void()>* kernel_ = nullptr;
  long total_ = 0, epoch_ = 0;
  std::atomic<long> next_{0};
  int finished_ = 0;
  bool stop_ = false;
};

inline void* dynamic_smem() { return tl_block->dynamic_smem.data(); }

template <class... Params>
struct Launcher {
  const char* name;
  void (*kernel)(Params...);
  dim3 grid, block;
  size_t smem;

  template <class... Args>
  void operator()(Args... args) const {
    const char* fail_kernel = std::getenv("BMC_EMU_FAIL_KERNEL");
    if (fail_kernel && std::strcmp(fail_kernel, name) == 0) {
      fail(cudaErrorLaunchFailure);
      return;
    }
    unsigned threads = block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535) {
      fail(cudaErrorInvalidConfiguration);
      return;
    }
    auto k = kernel;
    std::function<void()> call = [=] { k(args...); };
    Pool::get().run(grid, block, smem, call);
  }
};

template <class... Params>
Launcher<Params...> launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                           cudaStream_t) {
  return Launcher<Params...>{name, kernel, grid, block, smem};
}

// ---- warp intrinsics: through the per-warp buffer between two warp barriers -------------------------------------------

template <class T>
T exchange(T value, int source) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles move at most 8 bytes");
  Warp& w = tl_block->warps[tl_fiber->warp];
  std::memcpy(&w.slots[tl_fiber->lane], &value, sizeof(T));
  syncwarp();
  T result = value;
  int threads = static_cast<int>(tl_block->block.x * tl_block->block.y * tl_block->block.z);
  if (source >= 0 && source < 32 && tl_fiber->warp * 32 + source < threads)
    std::memcpy(&result, &w.slots[source], sizeof(T));
  syncwarp();
  return result;
}

}  // namespace bmc_emu

#define threadIdx (bmc_emu::tl_fiber->tid)
#define blockIdx (bmc_emu::tl_block->bid)
#define blockDim (bmc_emu::tl_block->block)
#define gridDim (bmc_emu::tl_block->grid)
#define warpSize 32

#define BMC_LAUNCH(kernel, grid, block, smem, stream) bmc_emu::launch(#kernel, kernel, grid, block, smem, stream)
#define BMC_DYNAMIC_SMEM(type, name) type* name = static_cast<type*>(bmc_emu::dynamic_smem())

inline void __syncthreads() { bmc_emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { bmc_emu::syncwarp(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class T>
T __shfl_sync(unsigned, T value, int src, int width = 32) {
  int lane = bmc_emu::tl_fiber->lane;
  return bmc_emu::exchange(value, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
T __shfl_xor_sync(unsigned, T value, int mask, int width = 32) {
  int lane = bmc_emu::tl_fiber->lane;
  int src = lane ^ mask;
  return bmc_emu::exchange(value, src >= (lane & ~(width - 1)) + width ? lane : src);
}
template <class T>
T __shfl_down_sync(unsigned, T value, unsigned delta, int width = 32) {
  int lane = bmc_emu::tl_fiber->lane;
  return bmc_emu::exchange(value, (lane & (width - 1)) + static_cast<int>(delta) >= width ? lane : lane + delta);
}
template <class T>
T __shfl_up_sync(unsigned, T value, unsigned delta, int width = 32) {
  int lane = bmc_emu::tl_fiber->lane;
  return bmc_emu::exchange(value, (lane & (width - 1)) < static_cast<int>(delta) ? lane : lane - delta);
}

// ---- atomics (blocks of one launch run on several worker threads) -------------------------------------------------------

template <class T>
T atomicCAS(T* address, T compare, T value) {
  __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;
}
template <class T>
T atomicExch(T* address, T value) {
  return __atomic_exchange_n(address, value, __ATOMIC_SEQ_CST);
}
inline int atomicAdd(int* address, int value) { return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST); }
