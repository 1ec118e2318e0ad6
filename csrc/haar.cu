// One level of the 3D (time, height, width) or 2D (height, width) Haar wavelet packet transform.
//
// Analysis: y[b, band * C + c, t, h, w] = coeff * sum_{i, j, k} (-1)^(bt*i + bh*j + bw*k)
//                                                   * v[b, c, 2t + i, 2h + j, 2w + k]
// with band = 4*bt + 2*bh + bw in 3D (time letter first) and band = 2*bw + bh in 2D (width letter
// first), letters L = 0, H = 1. v is x behind `front` virtual frames: copies of frame 0, or zeros.
// Synthesis applies the same sign pattern the other way (the 2x2x2 Walsh-Hadamard matrix is its own
// transpose), drops the first `front` frames of v, or with sum_front adds frames 0..front into output
// frame 0 (the adjoint of repeating frame 0).
//
// A thread owns kVec16<T> consecutive output w of one (b, c, t, h) of the coefficient side: 16-byte
// accesses on the coefficient rows and two 16-byte accesses on each signal row (twice as wide), with
// consecutive threads on consecutive w so that warps stay coalesced. 2D is the 3D code with one tap
// in time and a single coefficient frame.

#include <cstdint>

#include "common.cuh"

namespace cosmos_kernels {
namespace {

struct HaarParams {
  std::int64_t channels;     // C
  std::int64_t frames;       // signal frames (T for analysis input, 2 * T2 - front for synthesis output)
  std::int64_t half_frames;  // T2
  std::int64_t half_height;  // H2
  std::int64_t half_width;   // W2
  std::int64_t front;
  std::int64_t row_chunks;  // ceil(W2 / kVec16<T>)
  std::int64_t total;       // B * C * T2 * H2 * row_chunks threads
  bool zero_front;          // analysis: virtual front frames are zeros rather than copies of frame 0
  float coeff;
};

struct HaarPosition {
  std::int64_t batch, channel, half_frame, half_row, half_col;  // half_col: first of the thread's w
};

template <typename Index>
__device__ __forceinline__ HaarPosition locate(Index idx, const HaarParams& p, int vec) {
  HaarPosition pos;
  const Index chunk = idx % static_cast<Index>(p.row_chunks);
  idx /= static_cast<Index>(p.row_chunks);
  pos.half_col = static_cast<std::int64_t>(chunk) * vec;
  pos.half_row = idx % static_cast<Index>(p.half_height);
  idx /= static_cast<Index>(p.half_height);
  pos.half_frame = idx % static_cast<Index>(p.half_frames);
  idx /= static_cast<Index>(p.half_frames);
  pos.channel = idx % static_cast<Index>(p.channels);
  pos.batch = idx / static_cast<Index>(p.channels);
  return pos;
}

// 64-bit division is a long software sequence on the GPU; most launches fit 32 bits.
__device__ __forceinline__ bool locate_thread(const HaarParams& p, int vec, HaarPosition& pos) {
  const std::uint64_t idx = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<std::uint64_t>(p.total)) return false;
  pos = p.total <= 0xffffffffll ? locate(static_cast<std::uint32_t>(idx), p, vec) : locate(idx, p, vec);
  return true;
}

// In-place Walsh-Hadamard transform of a kTaps x 2 x 2 block: a[bt][bh][bw] becomes
// sum_{i, j, k} (-1)^(bt*i + bh*j + bw*k) a[i][j][k].
template <int kTaps>
__device__ __forceinline__ void hadamard(float (&a)[kTaps][2][2]) {
  if constexpr (kTaps == 2) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const float even = a[0][j][k], odd = a[1][j][k];
        a[0][j][k] = even + odd;
        a[1][j][k] = even - odd;
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kTaps; ++i) {
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      const float even = a[i][0][k], odd = a[i][1][k];
      a[i][0][k] = even + odd;
      a[i][1][k] = even - odd;
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const float even = a[i][j][0], odd = a[i][j][1];
      a[i][j][0] = even + odd;
      a[i][j][1] = even - odd;
    }
  }
}

template <bool kHasTime>
__device__ __forceinline__ constexpr int band_index(int bt, int bh, int bw) {
  return kHasTime ? 4 * bt + 2 * bh + bw : 2 * bw + bh;
}

// A signal row segment of 2 * kVec elements as two vectors; element q is half[q / kVec][q % kVec].
template <int kVec>
using SignalRow = float[2][kVec];

template <typename T, int kVec, bool kAligned>
__device__ __forceinline__ void load_signal_row(const T* row, int valid, SignalRow<kVec>& dst) {
  load_to_float<T, kVec, kAligned>(row, valid, dst[0]);
  load_to_float<T, kVec, kAligned>(row + kVec, valid - kVec, dst[1]);
}

template <typename T, int kVec, bool kAligned>
__device__ __forceinline__ void store_signal_row(T* row, int valid, const SignalRow<kVec>& src) {
  store_from_float<T, kVec, kAligned>(row, valid, src[0]);
  store_from_float<T, kVec, kAligned>(row + kVec, valid - kVec, src[1]);
}

template <typename T, bool kHasTime, bool kAligned>
__global__ void haar_analysis_kernel(const T* __restrict__ x, T* __restrict__ y, const HaarParams p) {
  constexpr int kVec = kVec16<T>;
  constexpr int kTaps = kHasTime ? 2 : 1;
  constexpr int kBands = 4 * kTaps;
  HaarPosition pos;
  if (!locate_thread(p, kVec, pos)) return;
  const int valid = static_cast<int>(min(static_cast<std::int64_t>(kVec), p.half_width - pos.half_col));
  const std::int64_t height = 2 * p.half_height, width = 2 * p.half_width;

  float signal[kTaps][2][2][kVec];  // [time tap][row][vector][element]
#pragma unroll
  for (int i = 0; i < kTaps; ++i) {
    std::int64_t frame = 0;
    bool zeros = false;
    if constexpr (kHasTime) {
      frame = 2 * pos.half_frame + i - p.front;
      if (frame < 0) {
        zeros = p.zero_front;
        frame = 0;
      }
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const T* row =
          x +
          (((pos.batch * p.channels + pos.channel) * p.frames + frame) * height + 2 * pos.half_row + j) *
              width +
          2 * pos.half_col;
      load_signal_row<T, kVec, kAligned>(row, zeros ? 0 : 2 * valid, signal[i][j]);
    }
  }

  float coeffs[kBands][kVec];
#pragma unroll
  for (int w = 0; w < kVec; ++w) {
    float block[kTaps][2][2];
#pragma unroll
    for (int i = 0; i < kTaps; ++i) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int k = 0; k < 2; ++k) block[i][j][k] = signal[i][j][(2 * w + k) / kVec][(2 * w + k) % kVec];
      }
    }
    hadamard(block);
#pragma unroll
    for (int bt = 0; bt < kTaps; ++bt) {
#pragma unroll
      for (int bh = 0; bh < 2; ++bh) {
#pragma unroll
        for (int bw = 0; bw < 2; ++bw)
          coeffs[band_index<kHasTime>(bt, bh, bw)][w] = p.coeff * block[bt][bh][bw];
      }
    }
  }

#pragma unroll
  for (int band = 0; band < kBands; ++band) {
    T* row = y +
             ((((pos.batch * kBands + band) * p.channels + pos.channel) * p.half_frames + pos.half_frame) *
                  p.half_height +
              pos.half_row) *
                 p.half_width +
             pos.half_col;
    store_from_float<T, kVec, kAligned>(row, valid, coeffs[band]);
  }
}

// The signal block [tap][row][vector][element] of one coefficient position.
template <typename T, bool kHasTime, bool kAligned>
__device__ __forceinline__ void synthesize(const T* __restrict__ y, const HaarParams& p,
                                           const HaarPosition& pos, std::int64_t half_frame, int valid,
                                           float (&signal)[kHasTime ? 2 : 1][2][2][kVec16<T>]) {
  constexpr int kVec = kVec16<T>;
  constexpr int kTaps = kHasTime ? 2 : 1;
  constexpr int kBands = 4 * kTaps;
  float coeffs[kBands][kVec];
#pragma unroll
  for (int band = 0; band < kBands; ++band) {
    const T* row = y +
                   ((((pos.batch * kBands + band) * p.channels + pos.channel) * p.half_frames + half_frame) *
                        p.half_height +
                    pos.half_row) *
                       p.half_width +
                   pos.half_col;
    load_to_float<T, kVec, kAligned>(row, valid, coeffs[band]);
  }
#pragma unroll
  for (int w = 0; w < kVec; ++w) {
    float block[kTaps][2][2];
#pragma unroll
    for (int bt = 0; bt < kTaps; ++bt) {
#pragma unroll
      for (int bh = 0; bh < 2; ++bh) {
#pragma unroll
        for (int bw = 0; bw < 2; ++bw) block[bt][bh][bw] = coeffs[band_index<kHasTime>(bt, bh, bw)][w];
      }
    }
    hadamard(block);
#pragma unroll
    for (int i = 0; i < kTaps; ++i) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int k = 0; k < 2; ++k)
          signal[i][j][(2 * w + k) / kVec][(2 * w + k) % kVec] = p.coeff * block[i][j][k];
      }
    }
  }
}

template <typename T, bool kHasTime, bool kSumFront, bool kAligned>
__global__ void haar_synthesis_kernel(const T* __restrict__ y, T* __restrict__ x, const HaarParams p) {
  static_assert(kHasTime || !kSumFront, "front frames exist only in time");
  constexpr int kVec = kVec16<T>;
  constexpr int kTaps = kHasTime ? 2 : 1;
  HaarPosition pos;
  if (!locate_thread(p, kVec, pos)) return;
  // Both virtual frames of this pair lie in front: dropped, or summed by the pair holding frame `front`.
  if (kHasTime && 2 * pos.half_frame + 1 < p.front) return;
  const int valid = static_cast<int>(min(static_cast<std::int64_t>(kVec), p.half_width - pos.half_col));
  const std::int64_t height = 2 * p.half_height, width = 2 * p.half_width;

  float signal[kTaps][2][2][kVec];
  synthesize<T, kHasTime, kAligned>(y, p, pos, pos.half_frame, valid, signal);

  if constexpr (kSumFront) {
    // Output frame 0 is the sum of virtual frames 0..front; this pair holds frame `front` itself, at
    // tap front - 2 * half_frame, and adds the earlier ones (recomputed: front is at most 2^levels - 1).
    if (2 * pos.half_frame <= p.front) {
      const bool front_at_tap0 = p.front == 2 * pos.half_frame;
      for (std::int64_t half_frame = 0; 2 * half_frame < p.front; ++half_frame) {
        float earlier[kTaps][2][2][kVec];
        synthesize<T, kHasTime, kAligned>(y, p, pos, half_frame, valid, earlier);
#pragma unroll
        for (int i = 0; i < kTaps; ++i) {
          if (2 * half_frame + i >= p.front) continue;
#pragma unroll
          for (int j = 0; j < 2; ++j) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
#pragma unroll
              for (int e = 0; e < kVec; ++e) {
                // Two constant indices rather than signal[tap]: a run-time index would spill the array.
                if (front_at_tap0)
                  signal[0][j][h][e] += earlier[i][j][h][e];
                else
                  signal[1][j][h][e] += earlier[i][j][h][e];
              }
            }
          }
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kTaps; ++i) {
    const std::int64_t frame = 2 * pos.half_frame + i - p.front;
    if (frame < 0) continue;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      T* row = x +
               (((pos.batch * p.channels + pos.channel) * p.frames + frame) * height + 2 * pos.half_row + j) *
                   width +
               2 * pos.half_col;
      store_signal_row<T, kVec, kAligned>(row, 2 * valid, signal[i][j]);
    }
  }
}

HaarParams make_params(const HaarShape& shape, int vec, float coeff) {
  if (shape.batch < 0 || shape.channels < 0 || shape.half_frames < 0 || shape.half_height < 0 ||
      shape.half_width < 0 || shape.front < 0) {
    throw std::invalid_argument("cosmos_kernels: haar sizes must be non-negative");
  }
  if (!shape.has_time && (shape.half_frames != 1 || shape.front != 0)) {
    throw std::invalid_argument("cosmos_kernels: 2D haar needs half_frames == 1 and front == 0");
  }
  if (shape.has_time && shape.front >= 2 * shape.half_frames && shape.half_frames > 0) {
    throw std::invalid_argument("cosmos_kernels: haar front must be smaller than 2 * half_frames");
  }
  HaarParams p{};
  p.channels = shape.channels;
  p.frames = shape.has_time ? 2 * shape.half_frames - shape.front : 1;
  p.half_frames = shape.half_frames;
  p.half_height = shape.half_height;
  p.half_width = shape.half_width;
  p.front = shape.front;
  p.row_chunks = ceil_div(shape.half_width, vec);
  p.total = shape.batch * shape.channels * shape.half_frames * shape.half_height * p.row_chunks;
  p.coeff = coeff;
  return p;
}

// Small blocks: finer steps of occupancy for these register-heavy threads.
constexpr int kHaarThreads = 128;

// 16-byte accesses when every row of both sides starts on a 16-byte boundary: rows of W2 (a multiple
// of the vector) and 2 * W2 elements behind aligned base pointers.
bool haar_aligned(const HaarShape& shape, int vec, const void* signal, const void* coeffs) {
  return shape.half_width % vec == 0 && is_aligned(signal, 16) && is_aligned(coeffs, 16);
}

template <typename T, typename Kernel>
void launch_haar(Kernel kernel, const HaarParams& p, const void* in, void* out, cudaStream_t stream,
                 const char* name) {
  const std::int64_t blocks = ceil_div(p.total, kHaarThreads);
  check_grid_size(blocks, name);
  kernel<<<static_cast<unsigned>(blocks), kHaarThreads, 0, stream>>>(static_cast<const T*>(in),
                                                                     static_cast<T*>(out), p);
  check_launch(name);
}

}  // namespace

void haar_analysis(DType dtype, const HaarShape& shape, const void* x, void* y, float coeff, bool zero_front,
                   int device, void* stream) {
  dispatch_dtype(dtype, [&](auto element) {
    using T = decltype(element);
    HaarParams p = make_params(shape, kVec16<T>, coeff);
    p.zero_front = zero_front;
    if (p.total == 0) return;
    DeviceGuard guard(device);
    const auto cuda_stream = static_cast<cudaStream_t>(stream);
    dispatch_bool(shape.has_time, [&](auto has_time) {
      dispatch_bool(haar_aligned(shape, kVec16<T>, x, y), [&](auto aligned) {
        launch_haar<T>(haar_analysis_kernel<T, decltype(has_time)::value, decltype(aligned)::value>, p, x, y,
                       cuda_stream, "haar_analysis_kernel");
      });
    });
  });
}

void haar_synthesis(DType dtype, const HaarShape& shape, const void* y, void* x, float coeff, bool sum_front,
                    int device, void* stream) {
  dispatch_dtype(dtype, [&](auto element) {
    using T = decltype(element);
    const HaarParams p = make_params(shape, kVec16<T>, coeff);
    if (p.total == 0) return;
    DeviceGuard guard(device);
    const auto cuda_stream = static_cast<cudaStream_t>(stream);
    dispatch_bool(haar_aligned(shape, kVec16<T>, x, y), [&](auto aligned) {
      constexpr bool kAligned = decltype(aligned)::value;
      if (!shape.has_time) {
        launch_haar<T>(haar_synthesis_kernel<T, false, false, kAligned>, p, y, x, cuda_stream,
                       "haar_synthesis_kernel");
      } else if (sum_front && shape.front > 0) {
        launch_haar<T>(haar_synthesis_kernel<T, true, true, kAligned>, p, y, x, cuda_stream,
                       "haar_synthesis_kernel");
      } else {
        launch_haar<T>(haar_synthesis_kernel<T, true, false, kAligned>, p, y, x, cuda_stream,
                       "haar_synthesis_kernel");
      }
    });
  });
}

}  // namespace cosmos_kernels
