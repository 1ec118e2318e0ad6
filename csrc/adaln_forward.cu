// AdaLN modulation forward, optionally fused with the gated residual before it:
//   v = x                  (plain)      or   h = v = x + gate * y   (gated, h stored)
//   out = LN(v) * (1 + scale) + shift
// LN over D without affine, biased variance, fp32 math; the gated form normalizes the fp32 h, not its
// rounded copy. Row and worker layout: adaln_common.cuh.

#include <type_traits>

#include "adaln_common.cuh"

namespace cosmos_kernels {
namespace {

template <typename T>
struct ForwardParams {
  RowPartition part;
  RowsPtr<T> x, y, gate, shift, scale;
  T* h_out;  // gated only
  T* out;
};

template <typename T, int kChunks, bool kGated, bool kAligned>
__global__ void __launch_bounds__(kMaxRowThreads) adaln_forward_kernel(const ForwardParams<T> p) {
  constexpr int kVec = kVec16<T>;
  using Raw = Packed<T, kVec>;
  const RowPartition& part = p.part;
  const std::int64_t worker = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  // Only single-warp rows share a block, and those never synchronize the block, so leaving is safe.
  if (worker >= part.num_workers) return;
  const WorkerRange range = locate_worker(part, worker);
  if (range.begin >= range.end) return;  // the same for all threads of the row

  int valid[kChunks];
  int offset[kChunks];
  thread_chunks<kChunks, kVec>(part, valid, offset);
  const auto load = [&](const T* row, int k) {
    return load_packed<T, kVec, kAligned>(row + offset[k], valid[k]);
  };

  // The frame's modulation stays in registers, packed, for all tokens of the run.
  Raw shift_raw[kChunks], scale_raw[kChunks], gate_raw[kChunks];
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    shift_raw[k] = load(p.shift.row(range.batch, range.frame), k);
    scale_raw[k] = load(p.scale.row(range.batch, range.frame), k);
    if constexpr (kGated) gate_raw[k] = load(p.gate.row(range.batch, range.frame), k);
  }

  // The next token's inputs are loaded while this one's statistics are reduced, so that memory stays
  // busy through the block barriers.
  Raw x_next[kChunks], y_next[kChunks];
  const auto prefetch = [&](std::int64_t s) {
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      x_next[k] = load(p.x.row(range.batch, s), k);
      if constexpr (kGated) y_next[k] = load(p.y.row(range.batch, s), k);
    }
  };
  prefetch(range.begin);

  for (std::int64_t s = range.begin; s < range.end; ++s) {
    Raw x_raw[kChunks];
    float h[kGated ? kChunks : 1][kVec];  // the fp32 residual sum, gated only
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      x_raw[k] = x_next[k];
      if constexpr (kGated) {
#pragma unroll
        for (int i = 0; i < kVec; ++i) h[k][i] = x_raw[k][i] + gate_raw[k][i] * y_next[k][i];
      }
    }
    if (s + 1 < range.end) prefetch(s + 1);
    const std::int64_t out_row = (range.batch * part.seq + s) * part.dim;

    if constexpr (kGated) {
#pragma unroll
      for (int k = 0; k < kChunks; ++k)
        store_from_float<T, kVec, kAligned>(p.h_out + out_row + offset[k], valid[k], h[k]);
    }

    // The plain row stays packed: its elements are unpacked again for each pass.
    const auto value = [&](int k, int i) {
      if constexpr (kGated) {
        return h[k][i];
      } else {
        return x_raw[k][i];
      }
    };
    const auto refresh = [&] {
      if constexpr (!kGated) {
#pragma unroll
        for (int k = 0; k < kChunks; ++k) keep_packed(x_raw[k]);
      }
    };
    float mean, rstd;
    row_moments<kChunks, kVec>(part, valid, value, refresh, mean, rstd);
    refresh();

#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      keep_packed(shift_raw[k]);
      keep_packed(scale_raw[k]);
      float out[kVec];
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        out[i] = (value(k, i) - mean) * rstd * (1.f + scale_raw[k][i]) + shift_raw[k][i];
      }
      store_from_float<T, kVec, kAligned>(p.out + out_row + offset[k], valid[k], out);
    }
  }
}

template <typename T, bool kGated>
void launch_forward(const AdalnShape& shape, RowsView x, RowsView y, RowsView gate, RowsView shift,
                    RowsView scale, void* h_out, void* out, float eps, int device, cudaStream_t stream) {
  constexpr int kVec = kVec16<T>;
  const RowLaunch launch = plan_rows(shape.dim, kVec, kForwardChunksPerThread);
  const bool aligned =
      shape.dim % kVec == 0 && rows_aligned(x, kVec) && rows_aligned(shift, kVec) &&
      rows_aligned(scale, kVec) && is_aligned(out, 16) &&
      (!kGated || (rows_aligned(y, kVec) && rows_aligned(gate, kVec) && is_aligned(h_out, 16)));

  dispatch_chunks<T>(launch.chunks_per_thread, [&](auto chunks) {
    dispatch_bool(aligned, [&](auto vectorized) {
      auto* kernel = adaln_forward_kernel<T, decltype(chunks)::value, kGated, decltype(vectorized)::value>;
      int blocks_per_sm = 0;
      check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel,
                                                               launch.row_threads * launch.rows_per_block, 0),
                 "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
      const std::int64_t pieces = plan_pieces(shape, launch, blocks_per_sm, multiprocessor_count(device));

      ForwardParams<T> params{};
      params.part = make_partition(shape, launch, pieces, eps);
      params.x = rows_ptr<T>(x);
      params.y = rows_ptr<T>(y);
      params.gate = rows_ptr<T>(gate);
      params.shift = rows_ptr<T>(shift);
      params.scale = rows_ptr<T>(scale);
      params.h_out = static_cast<T*>(h_out);
      params.out = static_cast<T*>(out);

      const std::int64_t blocks = ceil_div(params.part.num_workers, launch.rows_per_block);
      check_grid_size(blocks, "adaln_forward_kernel");
      const dim3 block(launch.row_threads, launch.rows_per_block);
      kernel<<<static_cast<unsigned>(blocks), block, 0, stream>>>(params);
      check_launch("adaln_forward_kernel");
    });
  });
}

}  // namespace

void adaln_forward(DType dtype, const AdalnShape& shape, bool gated, RowsView x, RowsView y, RowsView gate,
                   RowsView shift, RowsView scale, void* h_out, void* out, float eps, int device,
                   void* stream) {
  check_adaln_shape(shape);
  if (shape.batch * shape.seq == 0) return;
  DeviceGuard guard(device);
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  dispatch_dtype(dtype, [&](auto element) {
    using T = decltype(element);
    dispatch_bool(gated, [&](auto with_residual) {
      launch_forward<T, decltype(with_residual)::value>(shape, x, y, gate, shift, scale, h_out, out, eps,
                                                        device, cuda_stream);
    });
  });
}

}  // namespace cosmos_kernels
