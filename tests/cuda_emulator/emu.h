// CPU emulation of the few CUDA features the kernels use, to run them on a machine without a GPU.
// One block at a time, one std::thread per CUDA thread; __shared__ is a static (blocks are serial).
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

struct EmuWarp {
  std::barrier<> sync{32};
  float buf[32];
};
inline thread_local std::barrier<>* emu_block_barrier = nullptr;
inline thread_local EmuWarp* emu_warp = nullptr;
inline thread_local int emu_lane = 0;
inline std::atomic<long> emu_shuffles{0};

inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int offset) {
  emu_shuffles++;
  emu_warp->buf[emu_lane] = v;
  emu_warp->sync.arrive_and_wait();
  const float r = emu_warp->buf[emu_lane ^ offset];
  emu_warp->sync.arrive_and_wait();
  return r;
}
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float emu_rsqrtf(float x) { return 1.f / std::sqrt(x); }
#define rsqrtf emu_rsqrtf
template <typename A> inline A min(A a, A b) { return a < b ? a : b; }
template <typename A> inline A max(A a, A b) { return a < b ? b : a; }

template <typename... KArgs, typename... Args>
void emu_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t, cudaStream_t, Args... args) {
  const unsigned threads = block.x * block.y * block.z;
  if (threads % 32 != 0 && threads > 32) std::abort();
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> block_barrier(threads);
        std::vector<std::unique_ptr<EmuWarp>> warps;
        for (unsigned w = 0; w < (threads + 31) / 32; ++w) warps.push_back(std::make_unique<EmuWarp>());
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < threads; ++t) {
          pool.emplace_back([&, t] {
            threadIdx = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            blockIdx = uint3{bx, by, bz};
            blockDim = block;
            gridDim = grid;
            emu_block_barrier = &block_barrier;
            emu_warp = warps[t / 32].get();
            emu_lane = t % 32;
            kernel(args...);
          });
        }
        for (auto& th : pool) th.join();
      }
}
