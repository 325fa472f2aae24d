// Runs generated CUDA C on the host, for tests on machines without a GPU:
// each block's threads are OS threads that meet at a barrier for
// __syncthreads, and blocks run one after another, so a function's
// __shared__ arrays (made static here) belong to one block at a time.
// The device intrinsics the renderer uses get their PTX semantics.
#include <barrier>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <math.h>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x, y, z;
};
thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
static std::barrier<>* block_barrier = nullptr;
// Each thread's warp (32 consecutive threads of the block), for __syncwarp.
thread_local std::barrier<>* warp_barrier = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define __syncthreads() block_barrier->arrive_and_wait()
#define __syncwarp() warp_barrier->arrive_and_wait()

using std::max;
using std::min;
using std::signbit;
using std::isfinite;

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

// A function without __syncthreads (`sync` false) runs its threads one
// after another on this thread.
inline void launch(dim3 grid, dim3 block, bool sync, const std::function<void()>& f) {
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
                f();
              }
          continue;
        }
        std::barrier<> bar(threads);
        block_barrier = &bar;
        std::vector<std::unique_ptr<std::barrier<>>> warps;
        for (unsigned w = 0; w * 32 < threads; ++w)
          warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, threads - w * 32)));
        std::vector<std::thread> ts;
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx)
              ts.emplace_back([=, &f, &warps] {
                warp_barrier = warps[(tx + block.x * (ty + block.y * tz)) / 32].get();
                threadIdx = {tx, ty, tz};
                blockIdx = {bx, by, bz};
                blockDim = block;
                gridDim = grid;
                f();
              });
        for (auto& t : ts) t.join();
      }
}

template <typename T> std::vector<T> load(const char* dir, const char* name, size_t n) {
  std::vector<T> v(n);
  std::string path = std::string(dir) + "/" + name;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f || std::fread(v.data(), sizeof(T), n, f) != n) { std::fprintf(stderr, "cannot read %s\n", path.c_str()); std::exit(2); }
  std::fclose(f);
  return v;
}

template <typename T> void save(const char* dir, const char* name, const std::vector<T>& v) {
  std::string path = std::string(dir) + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(v.data(), sizeof(T), v.size(), f) != v.size()) { std::fprintf(stderr, "cannot write %s\n", path.c_str()); std::exit(2); }
  std::fclose(f);
}
