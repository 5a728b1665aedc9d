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
// * cudaMalloc and cudaMemcpy are host allocations (filled with NaN bytes) and memcpy;
// * a stream that captures (cudaStreamBeginCapture) records its launches, copies and memsets as the nodes of a CUDA
//   graph instead of running them, and cudaGraphLaunch replays them in order (see "CUDA graphs" below).
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
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureWrongThread = 908,
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
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
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
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    default: return "unknown error";
  }
}

inline cudaError_t cudaGetLastError() {
  cudaError_t e = bmc_emu::last_error();
  bmc_emu::last_error() = cudaSuccess;
  return e;
}

inline cudaError_t cudaPeekAtLastError() { return bmc_emu::last_error(); }

// ---- CUDA graphs: stream capture and replay ---------------------------------------------------------------------------
// While a stream captures (cudaStreamBeginCapture .. cudaStreamEndCapture), what is issued to it is recorded instead of
// run: each kernel launch, cudaMemcpy*Async and cudaMemsetAsync becomes a node holding its arguments by value, in
// issue order. cudaGraphInstantiate copies the nodes; cudaGraphLaunch runs them in that order on the host, as the
// stream would have (the emulator runs one operation at a time, so stream order is the graph's dependencies). A
// launch's configuration is checked when it is recorded (an error then is the launch's, as on the device). What the
// device refuses during a capture is refused here too, and invalidates the capture, so that cudaStreamEndCapture
// fails with cudaErrorStreamCaptureInvalidated: synchronizing the capturing stream; from the capturing thread (modes
// Global and ThreadLocal) synchronizing any stream or the device, cudaMalloc, cudaFree and synchronous cudaMemcpy;
// and copies between host and device memory into a capturing stream (the emulator cannot tell pinned host memory from
// pageable, and a node that bakes in a host pointer would read that pointer again on every replay).

struct bmc_emu_graph_node {
  const char* what;  // the kernel's name, or the call that issued it
  std::function<void()> run;
};
struct bmc_emu_graph {
  std::vector<bmc_emu_graph_node> nodes;
};
struct bmc_emu_graph_exec {
  std::vector<bmc_emu_graph_node> nodes;
};
struct bmc_emu_stream {
  bmc_emu_graph* capture = nullptr;  // while capturing: the graph being recorded
  bool invalidated = false;
  int mode = 0;
  std::thread::id owner;  // the thread that began the capture
};
typedef bmc_emu_graph* cudaGraph_t;
typedef bmc_emu_graph_exec* cudaGraphExec_t;
typedef bmc_emu_graph_node* cudaGraphNode_t;
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2
};

namespace bmc_emu {

// The streams whose capture this thread began in mode Global or ThreadLocal.
inline std::vector<bmc_emu_stream*>& strict_captures() {
  static thread_local std::vector<bmc_emu_stream*> streams;
  return streams;
}

// A call the device forbids while the calling thread captures: invalidates those captures and fails.
inline cudaError_t unsafe_during_capture() {
  if (strict_captures().empty()) return cudaSuccess;
  for (bmc_emu_stream* s : strict_captures()) s->invalidated = true;
  return fail(cudaErrorStreamCaptureUnsupported);
}

// Issues an operation to a stream: recorded while the stream captures (`host_memory`: it reads or writes host
// memory, which a capture refuses), else run now.
inline cudaError_t issue(bmc_emu_stream* s, const char* what, bool host_memory, std::function<void()> run) {
  if (s && s->capture) {
    if (host_memory) {
      s->invalidated = true;
      return fail(cudaErrorStreamCaptureUnsupported);
    }
    s->capture->nodes.push_back({what, std::move(run)});
    return cudaSuccess;
  }
  run();
  return cudaSuccess;
}

}  // namespace bmc_emu

inline cudaError_t cudaStreamBeginCapture(bmc_emu_stream* s, cudaStreamCaptureMode mode) {
  if (!s) return bmc_emu::fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot capture
  if (s->capture) return bmc_emu::fail(cudaErrorInvalidValue);
  s->capture = new bmc_emu_graph();
  s->invalidated = false;
  s->mode = mode;
  s->owner = std::this_thread::get_id();
  if (mode != cudaStreamCaptureModeRelaxed) bmc_emu::strict_captures().push_back(s);
  return cudaSuccess;
}

inline cudaError_t cudaStreamEndCapture(bmc_emu_stream* s, cudaGraph_t* graph) {
  if (!s || !s->capture) return bmc_emu::fail(cudaErrorInvalidValue);
  if (s->mode != cudaStreamCaptureModeRelaxed && s->owner != std::this_thread::get_id())
    return bmc_emu::fail(cudaErrorStreamCaptureWrongThread);
  auto& strict = bmc_emu::strict_captures();
  for (size_t i = 0; i < strict.size(); ++i)
    if (strict[i] == s) strict.erase(strict.begin() + static_cast<long>(i));
  bmc_emu_graph* g = s->capture;
  s->capture = nullptr;
  if (s->invalidated) {
    delete g;
    *graph = nullptr;
    return bmc_emu::fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = g;
  return cudaSuccess;
}

inline cudaError_t cudaStreamIsCapturing(bmc_emu_stream* s, cudaStreamCaptureStatus* status) {
  *status = !s || !s->capture ? cudaStreamCaptureStatusNone
                              : (s->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive);
  return cudaSuccess;
}

inline cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (!graph || !count) return bmc_emu::fail(cudaErrorInvalidValue);
  if (nodes)
    for (size_t i = 0; i < *count; ++i) nodes[i] = i < graph->nodes.size() ? &graph->nodes[i] : nullptr;
  *count = graph->nodes.size();
  return cudaSuccess;
}

inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long = 0) {
  if (!exec || !graph) return bmc_emu::fail(cudaErrorInvalidValue);
  *exec = new bmc_emu_graph_exec{graph->nodes};
  return cudaSuccess;
}

// Runs the nodes in order; into a capturing stream, the whole graph is recorded as one node (a child graph).
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, bmc_emu_stream* s) {
  if (!exec) return bmc_emu::fail(cudaErrorInvalidValue);
  return bmc_emu::issue(s, "cudaGraphLaunch", false, [exec] {
    for (const bmc_emu_graph_node& node : exec->nodes) node.run();
  });
}

inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

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
  *s = new bmc_emu_stream();  // its capture state (see "CUDA graphs")
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
// Launches run synchronously and report their errors through cudaGetLastError: nothing is left to fail here, except
// synchronizing during a capture.
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s && s->capture) {
    s->invalidated = true;
    return bmc_emu::fail(cudaErrorStreamCaptureUnsupported);
  }
  return bmc_emu::unsafe_during_capture();
}
inline cudaError_t cudaDeviceSynchronize() { return bmc_emu::unsafe_during_capture(); }

// Device memory starts as 0xFF bytes (NaN in every float type), not the zeros of fresh host pages: a kernel that
// reads what nothing wrote shows up as NaN instead of passing by luck.
inline cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (cudaError_t e = bmc_emu::unsafe_during_capture()) return e;
  size_t rounded = (bytes + 255) / 256 * 256;
  *ptr = std::aligned_alloc(256, rounded ? rounded : 256);
  if (!*ptr) return bmc_emu::fail(cudaErrorMemoryAllocation);
  std::memset(*ptr, 0xFF, rounded ? rounded : 256);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* ptr) {
  if (cudaError_t e = bmc_emu::unsafe_during_capture()) return e;
  std::free(ptr);
  return cudaSuccess;
}
inline bool bmc_emu_host_memory(cudaMemcpyKind kind) {
  return kind == cudaMemcpyHostToHost || kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToHost;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t stream = nullptr) {
  if (bytes && (!dst || !src)) return bmc_emu::fail(cudaErrorInvalidValue);
  return bmc_emu::issue(stream, "cudaMemcpyAsync", bmc_emu_host_memory(kind), [=] {
    if (bytes && dst != src) std::memmove(dst, src, bytes);
  });
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (cudaError_t e = bmc_emu::unsafe_during_capture()) return e;
  return cudaMemcpyAsync(dst, src, bytes, kind);
}
inline cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                     size_t height, cudaMemcpyKind kind, cudaStream_t stream = nullptr) {
  if (width > dpitch || width > spitch) return bmc_emu::fail(cudaErrorInvalidValue);
  return bmc_emu::issue(stream, "cudaMemcpy2DAsync", bmc_emu_host_memory(kind), [=] {
    for (size_t r = 0; r < height; ++r)
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  });
}
inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr) {
  return bmc_emu::issue(stream, "cudaMemsetAsync", false, [=] { std::memset(ptr, value, bytes); });
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
  cudaStream_t stream;

  template <class... Args>
  void operator()(Args... args) const {
    const char* fail_kernel = std::getenv("BMC_EMU_FAIL_KERNEL");
    cudaError_t refused = fail_kernel && std::strcmp(fail_kernel, name) == 0 ? cudaErrorLaunchFailure : cudaSuccess;
    unsigned threads = block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535)
      refused = cudaErrorInvalidConfiguration;
    if (refused) {  // a launch that fails while its stream captures invalidates the capture
      if (stream && stream->capture) stream->invalidated = true;
      fail(refused);
      return;
    }
    auto k = kernel;
    std::function<void()> call = [=] { k(args...); };
    dim3 g = grid, b = block;
    size_t bytes = smem;
    issue(stream, name, false, [=] { Pool::get().run(g, b, bytes, call); });
  }
};

template <class... Params>
Launcher<Params...> launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                           cudaStream_t stream) {
  return Launcher<Params...>{name, kernel, grid, block, smem, stream};
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

// ---- the GEMM's vector loads and tensor cores (nvcuda::wmma) ------------------------------------------------------------
// float2/float4 as the GEMM's vector loads use them (alignment as on the device, so a misaligned vector load faults
// here too). WMMA fragments are opaque on the device, so the emulator may lay them out as it likes: every thread
// holds the whole matrix (num_elements = rows x cols, row-major whatever the memory layout), the warp's threads all
// load the same tile (as the API requires) and each computes the whole product: the results are the warp's. The
// numerics are the precision's: a TF32 operand is read as TF32 (rounded to nearest, ties away from zero, to 10
// mantissa bits: the value __float_to_tf32 gives, so the generated code's own rounding is a no-op), a BF16 operand
// is what __float2bfloat16_rn stored (nearest even), products are exact in float and added to the FP32
// accumulator one k at a time, in increasing k. The shapes: m16n16k8 (TF32), m16n16k16 (BF16, and half-free FP32
// accumulators).

struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};

struct __nv_bfloat16 {
  uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return __nv_bfloat16{0x7FFF};
  u += 0x7FFFu + ((u >> 16) & 1u);
  return __nv_bfloat16{static_cast<uint16_t>(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

inline float __float_to_tf32(float f) {
  if (!std::isfinite(f)) return f;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x1000u) & 0xFFFFE000u;  // the 13 dropped bits: half of them rounds the magnitude up
  std::memcpy(&f, &u, 4);
  return f;
}

template <class T>
struct element {
  using type = T;
  static float value(T x) { return x; }
};
template <>
struct element<precision::tf32> {
  using type = float;
  static float value(float x) { return __float_to_tf32(x); }
};
template <>
struct element<__nv_bfloat16> {
  using type = __nv_bfloat16;
  static float value(__nv_bfloat16 x) { return __bfloat162float(x); }
};

template <class Use, int M, int N, int K>
struct extent;
template <int M, int N, int K>
struct extent<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct extent<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct extent<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  using storage = typename element<T>::type;
  static constexpr int rows = extent<Use, M, N, K>::rows, cols = extent<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  storage x[num_elements];
};

template <class Use, int M, int N, int K, class T, class Layout, class P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* p, unsigned ldm) {
  static_assert(!std::is_same<Layout, void>::value, "an operand fragment has a layout");
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.x[r * F::cols + c] = std::is_same<Layout, row_major>::value ? p[r * ldm + c] : p[c * ldm + r];
}

template <int M, int N, int K, class T>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) p[layout == mem_row_major ? r * ldm + c : c * ldm + r] = f.x[r * N + c];
}

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float v) {
  for (auto& x : f.x) x = v;
}

template <int M, int N, int K, class TA, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TA, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  float out[M * N];
  for (int r = 0; r < M; ++r)
    for (int col = 0; col < N; ++col) {
      float acc = c.x[r * N + col];
      for (int k = 0; k < K; ++k) acc += element<TA>::value(a.x[r * K + k]) * element<TA>::value(b.x[k * N + col]);
      out[r * N + col] = acc;
    }
  std::memcpy(d.x, out, sizeof(out));
}

}  // namespace wmma
}  // namespace nvcuda
