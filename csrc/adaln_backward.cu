// AdaLN modulation backward, optionally through the gated residual, recomputing the row statistics:
//   x_hat = (x - mean) * rstd,  g = grad_out * (1 + scale)
//   dLN   = rstd * (g - mean_D(g) - x_hat * mean_D(g * x_hat))
//   plain:  grad_x = dLN
//   gated (x is the stored h):  grad_x = grad_h + dLN,  grad_y = grad_x * gate,
//           grad_gate = frame sum of grad_x * y
//   grad_shift = frame sum of grad_out,  grad_scale = frame sum of grad_out * x_hat
// Frame sums: each worker (adaln_common.cuh) sums its run of tokens in fp32 registers and writes one
// row of an fp32 workspace (sums, pieces, B * T, D); a second kernel adds the pieces in a fixed order
// and rounds. No atomics, so the result is the same on every run.

#include <type_traits>

#include "adaln_common.cuh"

namespace cosmos_kernels {
namespace {

template <typename T>
struct BackwardParams {
  RowPartition part;
  RowsPtr<T> grad_out, x, grad_h, y, gate, scale;
  T* grad_x;
  T* grad_y;         // gated only
  float* workspace;  // [sum][piece][frame_index][D], sum = shift, scale, gate
};

template <typename T, int kChunks, bool kGated, bool kAligned>
__global__ void __launch_bounds__(kMaxRowThreads) adaln_backward_kernel(const BackwardParams<T> p) {
  constexpr int kVec = kVec16<T>;
  using Raw = Packed<T, kVec>;
  const RowPartition& part = p.part;
  const std::int64_t worker = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  // Only single-warp rows share a block, and those never synchronize the block, so leaving is safe.
  if (worker >= part.num_workers) return;
  const WorkerRange range = locate_worker(part, worker);

  int valid[kChunks];
  int offset[kChunks];
  thread_chunks<kChunks, kVec>(part, valid, offset);
  const auto load = [&](const T* row, int k) {
    return load_packed<T, kVec, kAligned>(row + offset[k], valid[k]);
  };

  // Zeros past the row keep the padded lanes out of the row sums.
  Raw scale_raw[kChunks], gate_raw[kChunks];
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    scale_raw[k] = load(p.scale.row(range.batch, range.frame), k);
    if constexpr (kGated) gate_raw[k] = load(p.gate.row(range.batch, range.frame), k);
  }

  float sum_shift[kChunks][kVec] = {};
  float sum_scale[kChunks][kVec] = {};
  float sum_gate[kGated ? kChunks : 1][kVec] = {};

  for (std::int64_t s = range.begin; s < range.end; ++s) {
    // All four rows are requested before the first reduction: more bytes in flight per thread.
    Raw x_raw[kChunks], grad_out_raw[kChunks], grad_h_raw[kGated ? kChunks : 1], y_raw[kGated ? kChunks : 1];
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      x_raw[k] = load(p.x.row(range.batch, s), k);
      grad_out_raw[k] = load(p.grad_out.row(range.batch, s), k);
      if constexpr (kGated) {
        grad_h_raw[k] = load(p.grad_h.row(range.batch, s), k);
        y_raw[k] = load(p.y.row(range.batch, s), k);
      }
    }

    // Rows stay packed; each pass unpacks them again (keep_packed) rather than holding fp32 copies.
    const auto refresh = [&] {
#pragma unroll
      for (int k = 0; k < kChunks; ++k) {
        keep_packed(x_raw[k]);
        keep_packed(grad_out_raw[k]);
        keep_packed(scale_raw[k]);
      }
    };
    float mean, rstd;
    row_moments<kChunks, kVec>(part, valid, [&](int k, int i) { return x_raw[k][i]; }, refresh, mean, rstd);
    refresh();

    // x_hat is nonzero past the row, but grad_out is zero there.
    const auto x_hat = [&](int k, int i) { return (x_raw[k][i] - mean) * rstd; };
    const auto g = [&](int k, int i) { return grad_out_raw[k][i] * (1.f + scale_raw[k][i]); };
    // The frame sums are taken here too, where x_hat and grad_out are unpacked anyway.
    float dots[2] = {0.f, 0.f};  // sum g, sum g * x_hat
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        dots[0] += g(k, i);
        dots[1] += g(k, i) * x_hat(k, i);
        sum_shift[k][i] += grad_out_raw[k][i];
        sum_scale[k][i] += grad_out_raw[k][i] * x_hat(k, i);
      }
    }
    row_sum(dots);
    const float mean_g = dots[0] * part.inv_dim;
    const float mean_gx = dots[1] * part.inv_dim;
    refresh();

    const std::int64_t out_row = (range.batch * part.seq + s) * part.dim;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      float grad_x[kVec];
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        grad_x[i] = rstd * (g(k, i) - mean_g - x_hat(k, i) * mean_gx);
      }
      if constexpr (kGated) {
        float grad_y[kVec];
#pragma unroll
        for (int i = 0; i < kVec; ++i) {
          grad_x[i] += grad_h_raw[k][i];
          grad_y[i] = grad_x[i] * gate_raw[k][i];
          sum_gate[k][i] += grad_x[i] * y_raw[k][i];
        }
        store_from_float<T, kVec, kAligned>(p.grad_y + out_row + offset[k], valid[k], grad_y);
      }
      store_from_float<T, kVec, kAligned>(p.grad_x + out_row + offset[k], valid[k], grad_x);
    }
  }

  // Every worker writes its workspace rows, an empty run included (zeros), so none is left unset.
  const std::int64_t frames_total = part.num_workers / part.pieces;
  const std::int64_t sum_stride = part.pieces * frames_total * part.dim;
  float* ws_row = p.workspace + (range.piece * frames_total + range.frame_index) * part.dim;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      if (i >= valid[k]) continue;
      ws_row[offset[k] + i] = sum_shift[k][i];
      ws_row[sum_stride + offset[k] + i] = sum_scale[k][i];
      if constexpr (kGated) ws_row[2 * sum_stride + offset[k] + i] = sum_gate[k][i];
    }
  }
}

template <typename T>
struct FrameSumParams {
  const float* workspace;
  std::int64_t pieces;
  std::int64_t sum_elems;  // B * T * D
  T* grad_shift;
  T* grad_scale;
  T* grad_gate;
};

// grad[e] = sum over pieces of workspace[sum][piece][e], pieces added in order; sum = blockIdx.y.
template <typename T>
__global__ void frame_sum_kernel(const FrameSumParams<T> p) {
  const int sum = blockIdx.y;
  T* grad = sum == 0 ? p.grad_shift : sum == 1 ? p.grad_scale : p.grad_gate;
  const float* partials = p.workspace + sum * p.pieces * p.sum_elems;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < p.sum_elems;
       e += step) {
    float total = 0.f;
    for (std::int64_t piece = 0; piece < p.pieces; ++piece) total += partials[piece * p.sum_elems + e];
    grad[e] = from_float<T>(total);
  }
}

template <typename T, bool kGated>
auto backward_kernel_for(int chunks_per_thread, bool aligned) {
  void (*kernel)(BackwardParams<T>) = nullptr;
  dispatch_chunks<T>(chunks_per_thread, [&](auto chunks) {
    dispatch_bool(aligned, [&](auto vectorized) {
      kernel = adaln_backward_kernel<T, decltype(chunks)::value, kGated, decltype(vectorized)::value>;
    });
  });
  return kernel;
}

template <typename T>
std::int64_t backward_pieces(const AdalnShape& shape, bool gated, int device) {
  const RowLaunch launch = plan_rows(shape.dim, kVec16<T>, kBackwardChunksPerThread);
  // The vectorized kernel stands for both: the piece count only balances the work.
  auto* kernel = gated ? backward_kernel_for<T, true>(launch.chunks_per_thread, true)
                       : backward_kernel_for<T, false>(launch.chunks_per_thread, true);
  int blocks_per_sm = 0;
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel,
                                                           launch.row_threads * launch.rows_per_block, 0),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  return plan_pieces(shape, launch, blocks_per_sm, multiprocessor_count(device));
}

template <typename T, bool kGated>
void launch_backward(const AdalnShape& shape, RowsView grad_out, RowsView x, RowsView grad_h, RowsView y,
                     RowsView gate, RowsView scale, void* grad_x, void* grad_y, void* grad_shift,
                     void* grad_scale, void* grad_gate, float* workspace, std::int64_t pieces, float eps,
                     cudaStream_t stream) {
  constexpr int kVec = kVec16<T>;
  const RowLaunch launch = plan_rows(shape.dim, kVec, kBackwardChunksPerThread);
  const bool aligned = shape.dim % kVec == 0 && rows_aligned(grad_out, kVec) && rows_aligned(x, kVec) &&
                       rows_aligned(scale, kVec) && is_aligned(grad_x, 16) &&
                       (!kGated || (rows_aligned(grad_h, kVec) && rows_aligned(y, kVec) &&
                                    rows_aligned(gate, kVec) && is_aligned(grad_y, 16)));

  BackwardParams<T> params{};
  params.part = make_partition(shape, launch, pieces, eps);
  params.grad_out = rows_ptr<T>(grad_out);
  params.x = rows_ptr<T>(x);
  params.grad_h = rows_ptr<T>(grad_h);
  params.y = rows_ptr<T>(y);
  params.gate = rows_ptr<T>(gate);
  params.scale = rows_ptr<T>(scale);
  params.grad_x = static_cast<T*>(grad_x);
  params.grad_y = static_cast<T*>(grad_y);
  params.workspace = workspace;

  const std::int64_t blocks = ceil_div(params.part.num_workers, launch.rows_per_block);
  check_grid_size(blocks, "adaln_backward_kernel");
  const dim3 block(launch.row_threads, launch.rows_per_block);
  auto* kernel = backward_kernel_for<T, kGated>(launch.chunks_per_thread, aligned);
  kernel<<<static_cast<unsigned>(blocks), block, 0, stream>>>(params);
  check_launch("adaln_backward_kernel");

  FrameSumParams<T> sums{};
  sums.workspace = workspace;
  sums.pieces = pieces;
  sums.sum_elems = shape.batch * shape.frames * shape.dim;
  sums.grad_shift = static_cast<T*>(grad_shift);
  sums.grad_scale = static_cast<T*>(grad_scale);
  sums.grad_gate = static_cast<T*>(grad_gate);
  constexpr int kSumThreads = 256;
  // A grid-stride loop past a million blocks: plenty to fill any GPU.
  const dim3 sum_grid(static_cast<unsigned>(std::min<std::int64_t>(ceil_div(sums.sum_elems, kSumThreads),
                                                                   std::int64_t{1} << 20)),
                      kGated ? 3 : 2);
  frame_sum_kernel<T><<<sum_grid, kSumThreads, 0, stream>>>(sums);
  check_launch("frame_sum_kernel");
}

}  // namespace

std::int64_t adaln_backward_pieces(DType dtype, const AdalnShape& shape, bool gated, int device) {
  check_adaln_shape(shape);
  DeviceGuard guard(device);
  std::int64_t pieces = 1;
  dispatch_dtype(dtype,
                 [&](auto element) { pieces = backward_pieces<decltype(element)>(shape, gated, device); });
  return pieces;
}

void adaln_backward(DType dtype, const AdalnShape& shape, bool gated, RowsView grad_out, RowsView x,
                    RowsView grad_h, RowsView y, RowsView gate, RowsView scale, void* grad_x, void* grad_y,
                    void* grad_shift, void* grad_scale, void* grad_gate, float* workspace,
                    std::int64_t pieces, float eps, int device, void* stream) {
  check_adaln_shape(shape);
  if (pieces < 1) throw std::invalid_argument("cosmos_kernels: adaln_backward needs pieces >= 1");
  if (shape.batch == 0) return;
  DeviceGuard guard(device);
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  dispatch_dtype(dtype, [&](auto element) {
    using T = decltype(element);
    dispatch_bool(gated, [&](auto with_residual) {
      launch_backward<T, decltype(with_residual)::value>(shape, grad_out, x, grad_h, y, gate, scale, grad_x,
                                                         grad_y, grad_shift, grad_scale, grad_gate, workspace,
                                                         pieces, eps, cuda_stream);
    });
  });
}

}  // namespace cosmos_kernels
