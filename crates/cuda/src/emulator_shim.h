// Runs generated CUDA C on the host, for tests on machines without a GPU:
// each block's threads are fibers on the launching thread, switched at
// __syncthreads and __syncwarp, and blocks run one after another, so a
// function's __shared__ arrays (made static here) belong to one block at a
// time. The device intrinsics the renderer uses get their PTX semantics.
// (OS threads meeting at barriers spent four fifths of the time in the
// kernel's scheduler.)
//
// Only small C headers: every module is compiled with this text in front of
// it, and the C++ thread, barrier, container and math headers took four
// fifths of each module's compile time. The math functions the renderer
// spells are the C library's, declared here; a float passed to one of the
// double functions (`sqrt(x)` in the factorizations) is computed in double
// and rounded once, as CUDA's float overloads round.
#include <climits>
#include <cstring>
#include <sys/mman.h>
#include <ucontext.h>
#include <utility>

extern "C" {
#define AJ_MATH1(name) double name(double); float name##f(float);
#define AJ_MATH2(name) double name(double, double); float name##f(float, float);
AJ_MATH1(fabs) AJ_MATH1(exp) AJ_MATH1(log) AJ_MATH1(log1p) AJ_MATH1(expm1) AJ_MATH1(sqrt)
AJ_MATH1(tanh) AJ_MATH1(sin) AJ_MATH1(cos) AJ_MATH1(floor) AJ_MATH1(ceil)
AJ_MATH2(fmod) AJ_MATH2(pow) AJ_MATH2(copysign)
#undef AJ_MATH1
#undef AJ_MATH2
}
inline bool signbit(float x) { return __builtin_signbitf(x); }
inline bool signbit(double x) { return __builtin_signbit(x); }
inline bool isfinite(float x) { return __builtin_isfinite(x); }
inline bool isfinite(double x) { return __builtin_isfinite(x); }

struct dim3 {
  unsigned x, y, z;
};
thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
inline void aj_syncthreads();
inline void aj_syncwarp();

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define __syncthreads() aj_syncthreads()
#define __syncwarp() aj_syncwarp()

// CUDA's integer max and min (floats go through the renderer's aj_max/aj_min).
template <typename T> inline T max(T a, T b) { return a < b ? b : a; }
template <typename T> inline T min(T a, T b) { return b < a ? b : a; }

inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline double __longlong_as_double(long long x) { double f; std::memcpy(&f, &x, 8); return f; }
// cvt.rzi.s32: truncate, saturate, NaN to 0.
template <typename T> inline int to_int_rz(T x) {
  if (x != x) return 0;
  if (x >= (T)2147483648.0) return INT_MAX;
  if (x <= (T)-2147483648.0) return INT_MIN;
  return (int)x;
}
inline int __float2int_rz(float x) { return to_int_rz(x); }
inline int __double2int_rz(double x) { return to_int_rz(x); }

// A barrier among fibers: the last to arrive opens the next generation.
struct aj_barrier {
  unsigned count, arrived;
  unsigned long generation;
};

// A fiber's stack: mapped with a page below it that faults, so that an
// overflow stops the process instead of writing over a neighbour.
const size_t AJ_STACK = 256 * 1024, AJ_GUARD = 4096;

// One thread of a block: its context, its stack, its index.
struct aj_fiber {
  ucontext_t context;
  char* stack;
  dim3 index;
  bool done;
};

// The launching thread's fibers, with stacks kept for later blocks.
struct aj_fibers {
  ucontext_t scheduler;
  aj_fiber* fibers = nullptr;
  aj_barrier* warps = nullptr;
  unsigned capacity = 0, current = 0;
  // Barrier arrivals and finished fibers: a round of the scheduler that
  // adds none means the live fibers wait for threads that have left.
  unsigned long progress = 0;
  aj_barrier block;
  const void* body = nullptr;
  void (*call)(const void*) = nullptr;
  ~aj_fibers() {
    for (unsigned i = 0; i < capacity; ++i) munmap(fibers[i].stack, AJ_STACK + AJ_GUARD);
    delete[] fibers;
    delete[] warps;
  }
  // Room for `n` fibers; false when stacks cannot be mapped.
  bool reserve(unsigned n) {
    if (n <= capacity) return true;
    aj_fiber* grown = new aj_fiber[n];
    for (unsigned i = 0; i < capacity; ++i) grown[i].stack = fibers[i].stack;
    unsigned made = capacity;
    for (; made < n; ++made) {
      void* m = mmap(nullptr, AJ_STACK + AJ_GUARD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) break;
      mprotect(m, AJ_GUARD, PROT_NONE);
      grown[made].stack = static_cast<char*>(m);
    }
    delete[] fibers;
    delete[] warps;
    fibers = grown;
    capacity = made;
    warps = new aj_barrier[(made + 31) / 32];
    return made == n;
  }
};
thread_local aj_fibers aj_here;

inline void aj_yield() {
  aj_fibers& f = aj_here;
  swapcontext(&f.fibers[f.current].context, &f.scheduler);
}

inline void aj_wait(aj_barrier& b) {
  aj_fibers& f = aj_here;
  ++f.progress;
  unsigned long g = b.generation;
  if (++b.arrived == b.count) {
    b.arrived = 0;
    ++b.generation;
    return;
  }
  while (b.generation == g) aj_yield();
}
inline void aj_syncthreads() { aj_wait(aj_here.block); }
inline void aj_syncwarp() { aj_wait(aj_here.warps[aj_here.current / 32]); }

inline void aj_fiber_main() {
  aj_fibers& f = aj_here;
  f.call(f.body);
  f.fibers[f.current].done = true;
  ++f.progress;
  // Returning resumes the scheduler (the context's uc_link).
}

template <typename F> void aj_invoke(const void* f) { (*static_cast<const F*>(f))(); }

// Runs the threads of one block that synchronise, as fibers: 0 when all
// finished, 2 when their stacks could not be made, 3 when some wait at a
// barrier that the others left without reaching.
inline int aj_run_block(unsigned threads, dim3 block) {
  aj_fibers& f = aj_here;
  if (!f.reserve(threads)) return 2;
  f.block = {threads, 0, 0};
  for (unsigned w = 0; w * 32 < threads; ++w) f.warps[w] = {threads - w * 32 < 32 ? threads - w * 32 : 32, 0, 0};
  for (unsigned tz = 0; tz < block.z; ++tz)
    for (unsigned ty = 0; ty < block.y; ++ty)
      for (unsigned tx = 0; tx < block.x; ++tx) {
        unsigned i = tx + block.x * (ty + block.y * tz);
        aj_fiber& fiber = f.fibers[i];
        fiber.index = {tx, ty, tz};
        fiber.done = false;
        ucontext_t& c = fiber.context;
        getcontext(&c);
        c.uc_stack.ss_sp = fiber.stack + AJ_GUARD;
        c.uc_stack.ss_size = AJ_STACK;
        c.uc_link = &f.scheduler;
        makecontext(&c, aj_fiber_main, 0);
      }
  // Rounds alternate between the threads' order and its reverse, so that a
  // thread that reads what another writes without a barrier between them
  // sees the wrong value in one of the two, whichever thread comes first.
  unsigned live = threads;
  for (unsigned round = 0; live > 0; ++round) {
    unsigned long before = f.progress;
    for (unsigned k = 0; k < threads; ++k) {
      unsigned i = round % 2 == 0 ? k : threads - 1 - k;
      aj_fiber& fiber = f.fibers[i];
      if (fiber.done) continue;
      f.current = i;
      threadIdx = fiber.index;
      swapcontext(&f.scheduler, &fiber.context);
      if (fiber.done) --live;
    }
    if (live > 0 && f.progress == before) return 3;
  }
  return 0;
}

// Runs `body` as every thread of every block of the launch: 0 when it ran,
// else [`aj_run_block`]'s code. A function without __syncthreads (`sync`
// false) runs its threads one after another.
inline int aj_launch_blocks(dim3 grid, dim3 block, bool sync, const void* body, void (*call)(const void*)) {
  unsigned threads = block.x * block.y * block.z;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = {bx, by, bz};
        blockDim = block;
        gridDim = grid;
        if (sync) {
          aj_here.body = body;
          aj_here.call = call;
          int r = aj_run_block(threads, block);
          if (r != 0) return r;
          continue;
        }
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx) {
              threadIdx = {tx, ty, tz};
              call(body);
            }
      }
  return 0;
}

template <typename F> int launch(dim3 grid, dim3 block, bool sync, const F& f) {
  return aj_launch_blocks(grid, block, sync, &f, aj_invoke<F>);
}
