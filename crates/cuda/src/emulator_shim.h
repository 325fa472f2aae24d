// Runs generated CUDA C on the host, for tests on machines without a GPU:
// each block's threads are OS threads that meet at a barrier for
// __syncthreads, and blocks run one after another, so a function's
// __shared__ arrays (made static here) belong to one block at a time.
// The device intrinsics the renderer uses get their PTX semantics.
//
// Only small C headers: every module is compiled with this text in front of
// it, and the C++ thread, barrier, container and math headers took four
// fifths of each module's compile time. The math functions the renderer
// spells are the C library's, declared here; a float passed to one of the
// double functions (`sqrt(x)` in the factorizations) is computed in double
// and rounded once, as CUDA's float overloads round.
#include <climits>
#include <cstring>
#include <pthread.h>
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
static pthread_barrier_t* block_barrier = nullptr;
// Each thread's warp (32 consecutive threads of the block), for __syncwarp.
thread_local pthread_barrier_t* warp_barrier = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define __syncthreads() pthread_barrier_wait(block_barrier)
#define __syncwarp() pthread_barrier_wait(warp_barrier)

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

// Held shut until every thread of a block has started: 1 then lets them
// run, 2 (a thread could not be started) sends them home.
struct aj_gate {
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
  int state = 0;
  void set(int s) {
    pthread_mutex_lock(&lock);
    state = s;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
  }
  int wait() {
    pthread_mutex_lock(&lock);
    while (state == 0) pthread_cond_wait(&changed, &lock);
    int s = state;
    pthread_mutex_unlock(&lock);
    return s;
  }
};

// What a block's thread starts with.
struct aj_thread {
  const void* body;
  void (*call)(const void*);
  dim3 thread, block_index, block, grid;
  pthread_barrier_t* warp;
  aj_gate* gate;
  pthread_t handle;
};

inline void* aj_thread_main(void* arg) {
  const aj_thread* t = static_cast<const aj_thread*>(arg);
  if (t->gate->wait() != 1) return nullptr;
  warp_barrier = t->warp;
  threadIdx = t->thread;
  blockIdx = t->block_index;
  blockDim = t->block;
  gridDim = t->grid;
  t->call(t->body);
  return nullptr;
}

template <typename F> void aj_invoke(const void* f) { (*static_cast<const F*>(f))(); }

// Runs `f` as every thread of every block of the launch; 0 when it ran, 2
// when a block's threads could not be started (those that did are joined).
// A function without __syncthreads (`sync` false) runs its threads one
// after another on this thread.
inline int aj_launch_blocks(dim3 grid, dim3 block, bool sync, const void* body, void (*call)(const void*)) {
  unsigned threads = block.x * block.y * block.z;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        if (!sync) {
          blockIdx = {bx, by, bz};
          blockDim = block;
          gridDim = grid;
          for (unsigned tz = 0; tz < block.z; ++tz)
            for (unsigned ty = 0; ty < block.y; ++ty)
              for (unsigned tx = 0; tx < block.x; ++tx) {
                threadIdx = {tx, ty, tz};
                call(body);
              }
          continue;
        }
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, nullptr, threads);
        block_barrier = &bar;
        unsigned warps = (threads + 31) / 32;
        pthread_barrier_t* warp = new pthread_barrier_t[warps];
        for (unsigned w = 0; w < warps; ++w) pthread_barrier_init(&warp[w], nullptr, threads - w * 32 < 32 ? threads - w * 32 : 32);
        aj_thread* ts = new aj_thread[threads];
        aj_gate gate;
        unsigned started = 0;
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx) {
              unsigned i = tx + block.x * (ty + block.y * tz);
              ts[i] = {body, call, {tx, ty, tz}, {bx, by, bz}, block, grid, &warp[i / 32], &gate, {}};
              if (started == i && pthread_create(&ts[i].handle, nullptr, aj_thread_main, &ts[i]) == 0) ++started;
            }
        gate.set(started == threads ? 1 : 2);
        for (unsigned i = 0; i < started; ++i) pthread_join(ts[i].handle, nullptr);
        for (unsigned w = 0; w < warps; ++w) pthread_barrier_destroy(&warp[w]);
        pthread_barrier_destroy(&bar);
        delete[] warp;
        delete[] ts;
        if (started < threads) return 2;
      }
  return 0;
}

template <typename F> int launch(dim3 grid, dim3 block, bool sync, const F& f) {
  return aj_launch_blocks(grid, block, sync, &f, aj_invoke<F>);
}
