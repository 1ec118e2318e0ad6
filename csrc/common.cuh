// Helpers shared by the kernels: storage types, 16-byte vectors, launch checks, dtype dispatch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cosmos_kernels.h"

namespace cosmos_kernels {

// ---------------------------------------------------------------------------------------------------
// Storage: all arithmetic is fp32, storage is T; stores round to nearest even.

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Raw bits of one element, and the element back from them.
__device__ __forceinline__ unsigned bits_of(float v) { return __float_as_uint(v); }
__device__ __forceinline__ unsigned bits_of(__half v) { return __half_as_ushort(v); }
__device__ __forceinline__ unsigned bits_of(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }

// N elements of T packed into 32-bit words as they lie in memory. Kept packed in registers a 16-bit
// element costs half a register (one per element would be what the compiler does with an array of
// __nv_bfloat16), and a full vector is moved with one access of up to 16 bytes.
template <typename T, int N>
struct Packed {
  static_assert(N * sizeof(T) % 4 == 0 && N * sizeof(T) <= 16, "whole words, one access");
  static constexpr int kWords = static_cast<int>(N * sizeof(T) / 4);
  struct alignas(4 * kWords) Words {
    unsigned w[kWords];
  };
  Words words;

  __device__ __forceinline__ float operator[](int i) const {
    if constexpr (sizeof(T) == 4) {
      return __uint_as_float(words.w[i]);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      const unsigned word = words.w[i / 2];
      return __uint_as_float(i % 2 ? word & 0xffff0000u : word << 16);  // bf16 is the top of an fp32
    } else {
      return __half2float(__ushort_as_half(static_cast<unsigned short>(words.w[i / 2] >> (16 * (i % 2)))));
    }
  }

  __device__ __forceinline__ void set(int i, unsigned bits) {
    if constexpr (sizeof(T) == 4) {
      words.w[i] = bits;
    } else if (i % 2 == 0) {
      words.w[i / 2] = bits;
    } else {
      words.w[i / 2] |= bits << 16;
    }
  }
};

// The widest access the hardware does per thread is 16 bytes.
template <typename T>
constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));

// Loads `valid` (<= N) elements of p, zeros for the rest; nothing is read when valid <= 0. kAligned
// promises that p is aligned to the whole vector and that valid is 0 or N: then one access suffices
// and no element-wise fallback is compiled (it would hold registers for the loads in flight).
template <typename T, int N, bool kAligned>
__device__ __forceinline__ Packed<T, N> load_packed(const T* p, int valid) {
  Packed<T, N> raw;
  if (kAligned && valid > 0) {
    raw.words = *reinterpret_cast<const typename Packed<T, N>::Words*>(p);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) raw.set(i, !kAligned && i < valid ? bits_of(p[i]) : 0u);
  }
  return raw;
}

template <typename T, int N, bool kAligned>
__device__ __forceinline__ void load_to_float(const T* p, int valid, float (&dst)[N]) {
  const Packed<T, N> raw = load_packed<T, N, kAligned>(p, valid);
#pragma unroll
  for (int i = 0; i < N; ++i) dst[i] = raw[i];
}

// After this call the compiler must unpack raw's elements again instead of keeping fp32 copies from
// before it alive: a 16-bit row then costs half the registers between its passes, for one cheap
// unpacking instruction per element and pass. No instruction is emitted.
template <typename T, int N>
__device__ __forceinline__ void keep_packed(Packed<T, N>& raw) {
  if constexpr (sizeof(T) == 2) {
#pragma unroll
    for (int i = 0; i < Packed<T, N>::kWords; ++i) asm volatile("" : "+r"(raw.words.w[i]));
  }
}

// Rounds to nearest even and stores `valid` elements, with the promise of load_packed for kAligned.
template <typename T, int N, bool kAligned>
__device__ __forceinline__ void store_from_float(T* p, int valid, const float (&src)[N]) {
  if constexpr (kAligned) {
    if (valid <= 0) return;
    typename Packed<T, N>::Words words;
#pragma unroll
    for (int i = 0; i < Packed<T, N>::kWords; ++i) {
      if constexpr (sizeof(T) == 4) {
        words.w[i] = __float_as_uint(src[i]);
      } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        const __nv_bfloat162 pair = __floats2bfloat162_rn(src[2 * i], src[2 * i + 1]);
        memcpy(&words.w[i], &pair, 4);
      } else {
        const __half2 pair = __floats2half2_rn(src[2 * i], src[2 * i + 1]);
        memcpy(&words.w[i], &pair, 4);
      }
    }
    *reinterpret_cast<typename Packed<T, N>::Words*>(p) = words;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) {
      if (i < valid) p[i] = from_float<T>(src[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Host side.

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // cleared, or the next good launch's check_launch would report it again
    throw std::runtime_error(std::string("cosmos_kernels: ") + what + ": " + cudaGetErrorName(status) + " (" +
                             cudaGetErrorString(status) + ")");
  }
}

// Launch errors (bad configuration, no device, too many resources) surface here, asynchronous faults
// at the caller's next synchronizing call.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

// Makes `device` current for the launches of one call and restores the caller's device afterwards:
// torch may hand us tensors on a device other than the current one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
    restore_ = previous_ != device;
  }
  ~DeviceGuard() {
    if (restore_ && cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool restore_ = false;
};

inline void check_grid_size(std::int64_t blocks, const char* kernel) {
  if (blocks > 0x7fffffff)
    throw std::invalid_argument(std::string("cosmos_kernels: grid too large for ") + kernel);
}

inline int multiprocessor_count(int device) {
  int count = 0;
  check_cuda(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute(multiProcessorCount)");
  return count;
}

inline bool is_aligned(const void* p, std::int64_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % static_cast<std::uintptr_t>(bytes) == 0;
}

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Calls fn(std::bool_constant<flag>{}).
template <typename Fn>
void dispatch_bool(bool flag, Fn&& fn) {
  if (flag) {
    fn(std::true_type{});
  } else {
    fn(std::false_type{});
  }
}

// Calls fn(T{}) with T the storage type of `dtype`.
template <typename Fn>
void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32:
      fn(float{});
      return;
    case DType::kFloat16:
      fn(__half{});
      return;
    case DType::kBFloat16:
      fn(__nv_bfloat16{});
      return;
  }
  throw std::invalid_argument("cosmos_kernels: unknown dtype code");
}

}  // namespace cosmos_kernels
