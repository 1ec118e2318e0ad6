// Shared by the AdaLN forward and backward kernels: how rows map onto threads and workers, and the
// row reductions.
//
// One row of D elements is split into chunks of kVec16<T> elements (16 bytes); thread x of a row's
// threads owns chunks x, x + threads, x + 2 * threads, ... (kChunks of them), so a warp's accesses are
// contiguous and the whole row lives in registers between the statistics and the output. A row gets
// one warp (small D, several rows per block) or up to kMaxRowThreads threads (one row per block).
//
// A "worker" (the threads of one row slot) walks a contiguous run of tokens inside one frame, so the
// frame's modulation rows are loaded once into registers and the backward pass can sum its frame
// gradients in registers. Each frame is cut into `pieces` runs; the piece count is chosen to give
// about two resident waves of workers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common.cuh"

namespace cosmos_kernels {

constexpr int kMaxRowThreads = 256;
constexpr int kMaxRowWarps = kMaxRowThreads / 32;
constexpr int kWarpRowsPerBlock = 4;  // rows per block when a row gets a single warp
constexpr int kMaxChunksPerThread = 16;

template <typename T>
struct RowsPtr {
  const T* data;
  std::int64_t batch_stride;
  std::int64_t row_stride;

  __device__ __forceinline__ const T* row(std::int64_t b, std::int64_t r) const {
    return data + b * batch_stride + r * row_stride;
  }
};

template <typename T>
RowsPtr<T> rows_ptr(RowsView view) {
  return {static_cast<const T*>(view.data), view.batch_stride, view.row_stride};
}

struct RowPartition {
  std::int64_t frames;            // T, modulation rows per batch
  std::int64_t tokens_per_frame;  // S / T
  std::int64_t pieces;            // runs per frame
  std::int64_t piece_tokens;      // tokens per run (the last run of a frame may be shorter or empty)
  std::int64_t num_workers;       // B * T * pieces
  std::int64_t seq;               // S, for the contiguous outputs
  int dim;
  int num_chunks;  // ceil(dim / kVec)
  float inv_dim;
  float eps;
};

struct WorkerRange {
  std::int64_t batch;
  std::int64_t frame;  // index of the modulation row within the batch
  std::int64_t piece;
  std::int64_t frame_index;  // batch * frames + frame, the row of the (B * T, D) frame sums
  std::int64_t begin;        // tokens [begin, end) of the batch
  std::int64_t end;
};

__device__ __forceinline__ WorkerRange locate_worker(const RowPartition& part, std::int64_t worker) {
  WorkerRange w;
  w.frame_index = worker / part.pieces;
  w.piece = worker - w.frame_index * part.pieces;
  w.batch = w.frame_index / part.frames;
  w.frame = w.frame_index - w.batch * part.frames;
  const std::int64_t frame_begin = w.frame * part.tokens_per_frame;
  const std::int64_t first = min(w.piece * part.piece_tokens, part.tokens_per_frame);
  const std::int64_t last = min(first + part.piece_tokens, part.tokens_per_frame);
  w.begin = frame_begin + first;
  w.end = frame_begin + last;
  return w;
}

// Elements of chunk k of this thread that fall inside the row (0 for chunks past the end).
template <int kVec>
__device__ __forceinline__ int chunk_valid(const RowPartition& part, int chunk) {
  return max(0, min(kVec, part.dim - chunk * kVec));
}

// The kChunks chunks of kVec elements this thread owns in every row of the launch: chunk k starts at
// element offset[k], and valid[k] of its elements lie inside the row (all rows share D).
template <int kChunks, int kVec>
__device__ __forceinline__ void thread_chunks(const RowPartition& part, int (&valid)[kChunks],
                                              int (&offset)[kChunks]) {
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int chunk = threadIdx.x + k * blockDim.x;
    valid[k] = chunk_valid<kVec>(part, chunk);
    offset[k] = chunk * kVec;
  }
}

// Sums kValues values over the threads of one row; every thread gets the same total (the xor butterfly
// and the fixed-order sum over warps are symmetric). Uses __syncthreads only when a row spans several
// warps, and then each block holds exactly one row, so all of its threads are here.
template <int kValues>
__device__ __forceinline__ void row_sum(float (&v)[kValues]) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
#pragma unroll
    for (int i = 0; i < kValues; ++i) v[i] += __shfl_xor_sync(0xffffffffu, v[i], offset);
  }
  if (blockDim.x == 32) return;

  __shared__ float warp_sums[kMaxRowWarps][kValues];
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) {
#pragma unroll
    for (int i = 0; i < kValues; ++i) warp_sums[warp][i] = v[i];
  }
  __syncthreads();
  const int num_warps = blockDim.x / 32;
#pragma unroll
  for (int i = 0; i < kValues; ++i) {
    float total = 0.f;
    for (int w = 0; w < num_warps; ++w) total += warp_sums[w][i];
    v[i] = total;
  }
  // The next reduction overwrites warp_sums.
  __syncthreads();
}

// Mean and reciprocal standard deviation (biased variance, eps inside the root) of a row held in
// registers, in two passes so that a large mean does not cancel the variance. value(k, i) is element
// i of chunk k (zero past the row); between the passes `refresh` may drop fp32 copies of packed rows.
template <int kChunks, int kVec, typename Value, typename Refresh>
__device__ __forceinline__ void row_moments(const RowPartition& part, const int (&valid)[kChunks],
                                            Value value, Refresh refresh, float& mean, float& rstd) {
  float sum[1] = {0.f};
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) sum[0] += value(k, i);
  }
  row_sum(sum);
  mean = sum[0] * part.inv_dim;
  refresh();

  float squares[1] = {0.f};
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const float d = i < valid[k] ? value(k, i) - mean : 0.f;
      squares[0] += d * d;
    }
  }
  row_sum(squares);
  rstd = rsqrtf(squares[0] * part.inv_dim + part.eps);
}

// ---------------------------------------------------------------------------------------------------
// Host side: the launch shape for a row length.

struct RowLaunch {
  int chunks_per_thread;  // kChunks template argument
  int row_threads;        // blockDim.x
  int rows_per_block;     // blockDim.y
  int num_chunks;
};

// 16-byte chunks per thread to aim for: more amortize the per-thread indexing and the reductions over
// more data, fewer leave registers for more rows in flight (ptxas -v: bf16 forward at 4 chunks holds
// 32 elements in ~115 registers, 4 blocks of 128 threads per SM). The backward holds more per element.
constexpr int kForwardChunksPerThread = 4;
constexpr int kBackwardChunksPerThread = 2;

inline int threads_for(int num_chunks, int chunks_per_thread) {
  return static_cast<int>(ceil_div(ceil_div(num_chunks, chunks_per_thread), 32) * 32);
}

inline RowLaunch plan_rows(std::int64_t dim, int vec, int target_chunks) {
  RowLaunch launch{};
  launch.num_chunks = static_cast<int>(ceil_div(dim, vec));
  // The target, but no more than a single warp needs, and enough that the row fits one block.
  int chunks = target_chunks;
  while (chunks > 1 && threads_for(launch.num_chunks, chunks / 2) <= 32) chunks /= 2;
  while (chunks < kMaxChunksPerThread && threads_for(launch.num_chunks, chunks) > kMaxRowThreads) chunks *= 2;
  if (threads_for(launch.num_chunks, chunks) > kMaxRowThreads) {
    throw std::invalid_argument("cosmos_kernels: adaln row too long");
  }
  launch.chunks_per_thread = chunks;
  launch.row_threads = threads_for(launch.num_chunks, chunks);
  launch.rows_per_block = launch.row_threads == 32 ? kWarpRowsPerBlock : 1;
  return launch;
}

// Pieces per frame for about two waves of resident workers; `blocks_per_sm` from the occupancy API.
inline std::int64_t plan_pieces(const AdalnShape& shape, const RowLaunch& launch, int blocks_per_sm,
                                int sm_count) {
  const std::int64_t frames_total = shape.batch * shape.frames;
  const std::int64_t tokens_per_frame = shape.frames > 0 ? shape.seq / shape.frames : 0;
  const std::int64_t resident =
      static_cast<std::int64_t>(std::max(blocks_per_sm, 1)) * sm_count * launch.rows_per_block;
  std::int64_t pieces = ceil_div(2 * resident, std::max<std::int64_t>(frames_total, 1));
  pieces = std::clamp<std::int64_t>(pieces, 1, std::max<std::int64_t>(tokens_per_frame, 1));
  // Drop pieces that the rounding would leave empty.
  if (tokens_per_frame > 0) pieces = ceil_div(tokens_per_frame, ceil_div(tokens_per_frame, pieces));
  return pieces;
}

inline RowPartition make_partition(const AdalnShape& shape, const RowLaunch& launch, std::int64_t pieces,
                                   float eps) {
  RowPartition part{};
  part.frames = shape.frames;
  part.tokens_per_frame = shape.seq / shape.frames;
  part.pieces = pieces;
  part.piece_tokens = std::max<std::int64_t>(ceil_div(part.tokens_per_frame, pieces), 1);
  part.num_workers = shape.batch * shape.frames * pieces;
  part.seq = shape.seq;
  part.dim = static_cast<int>(shape.dim);
  part.num_chunks = launch.num_chunks;
  part.inv_dim = 1.f / static_cast<float>(shape.dim);
  part.eps = eps;
  return part;
}

inline void check_adaln_shape(const AdalnShape& shape) {
  if (shape.batch < 0 || shape.seq < 0 || shape.frames <= 0 || shape.dim <= 0 ||
      shape.seq % shape.frames != 0) {
    throw std::invalid_argument("cosmos_kernels: adaln needs B, S >= 0, T, D > 0 and S % T == 0");
  }
  if (shape.dim > kAdalnMaxDim) {
    throw std::invalid_argument("cosmos_kernels: adaln supports D <= " + std::to_string(kAdalnMaxDim));
  }
}

// 16-byte accesses need every row start at a 16-byte boundary: base pointer and both strides.
inline bool rows_aligned(RowsView view, int vec) {
  return is_aligned(view.data, 16) && view.batch_stride % vec == 0 && view.row_stride % vec == 0;
}

// Chunks per thread that a row of kAdalnMaxDim elements needs at kMaxRowThreads threads: the largest
// template argument instantiated for T.
template <typename T>
constexpr int kMaxChunks = static_cast<int>(kAdalnMaxDim / kVec16<T> / kMaxRowThreads);

// Calls fn(std::integral_constant<int, K>{}) for the chunks-per-thread template argument.
template <typename T, typename Fn>
void dispatch_chunks(int chunks_per_thread, Fn&& fn) {
  static_assert(kMaxChunks<T> <= kMaxChunksPerThread);
  switch (chunks_per_thread) {
    case 1:
      fn(std::integral_constant<int, 1>{});
      return;
    case 2:
      fn(std::integral_constant<int, 2>{});
      return;
    case 4:
      fn(std::integral_constant<int, 4>{});
      return;
    case 8:
      fn(std::integral_constant<int, 8>{});
      return;
    case 16:
      if constexpr (kMaxChunks<T> >= 16) {
        fn(std::integral_constant<int, 16>{});
        return;
      }
  }
  throw std::invalid_argument("cosmos_kernels: unsupported chunks per thread");
}

}  // namespace cosmos_kernels
