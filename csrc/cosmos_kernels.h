// Host-side entry points of the CUDA kernels. Plain C++: no CUDA, Python or torch types, so the pybind11
// bindings (python/bindings.cpp) can include it without the CUDA headers. Every function launches on
// `stream` (a cudaStream_t passed as void*) on CUDA device `device`, and throws std::runtime_error when
// CUDA reports an error.
#pragma once

#include <cstdint>

namespace cosmos_kernels {

// Element type of every tensor of one call; the math inside is fp32 whatever the storage type.
enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

DType dtype_from_code(int code);

// A (B, N, D) tensor whose last dim is contiguous; strides in elements. For modulation rows N is the
// number of frames T, for token rows the sequence length S.
struct RowsView {
  const void* data = nullptr;
  std::int64_t batch_stride = 0;
  std::int64_t row_stride = 0;
};

// Token s of batch b uses modulation row (b, s / (seq / frames)).
struct AdalnShape {
  std::int64_t batch = 0;
  std::int64_t seq = 0;
  std::int64_t frames = 0;
  std::int64_t dim = 0;
};

constexpr std::int64_t kAdalnMaxDim = 16384;

// out = LN(v) * (1 + scale) + shift with v = x, or with `gated` v = x + gate * y, also stored into
// h_out (y, gate and h_out are unused otherwise). Outputs are contiguous (B, S, D).
void adaln_forward(DType dtype, const AdalnShape& shape, bool gated, RowsView x, RowsView y, RowsView gate,
                   RowsView shift, RowsView scale, void* h_out, void* out, float eps, int device,
                   void* stream);

// The backward pass sums the frame gradients in `pieces` row chunks per frame into an fp32 workspace of
// (gated ? 3 : 2) * pieces * B * T * D floats, then reduces the chunks in a fixed order (deterministic).
// The caller allocates the workspace with the piece count this function chooses for the device.
std::int64_t adaln_backward_pieces(DType dtype, const AdalnShape& shape, bool gated, int device);

// Plain: grad_x = dLN(grad_out) at x; grad_shift / grad_scale frame sums (grad_h, y, gate, grad_y and
// grad_gate unused). Gated: `x` holds the stored h; g = grad_h + dLN(grad_out) at h; grad_x = g,
// grad_y = g * gate and grad_gate = frame sum of g * y. Outputs are contiguous: (B, S, D), (B, T, D).
void adaln_backward(DType dtype, const AdalnShape& shape, bool gated, RowsView grad_out, RowsView x,
                    RowsView grad_h, RowsView y, RowsView gate, RowsView scale, void* grad_x, void* grad_y,
                    void* grad_shift, void* grad_scale, void* grad_gate, float* workspace,
                    std::int64_t pieces, float eps, int device, void* stream);

// One level of the Haar transform on contiguous tensors. 3D (has_time): x is (B, C, T, H, W) and y is
// (B, 8C, (T + front) / 2, H / 2, W / 2); 2D: x is (B, C, H, W), y is (B, 4C, H / 2, W / 2), pass
// frames = 1 and front = 0. Band order and the causal front frames are documented in haar.cu.
struct HaarShape {
  std::int64_t batch = 0;
  std::int64_t channels = 0;     // C, channels of the signal side
  std::int64_t half_frames = 0;  // T2, frames of the coefficient side (1 for 2D)
  std::int64_t half_height = 0;  // H2
  std::int64_t half_width = 0;   // W2
  std::int64_t front = 0;        // virtual frames in front of the signal (causal padding)
  bool has_time = false;
};

void haar_analysis(DType dtype, const HaarShape& shape, const void* x, void* y, float coeff, bool zero_front,
                   int device, void* stream);
void haar_synthesis(DType dtype, const HaarShape& shape, const void* y, void* x, float coeff, bool sum_front,
                    int device, void* stream);

// CUDA runtime version the kernels were compiled against (CUDART_VERSION, e.g. 13000).
int compiled_cuda_runtime_version();

}  // namespace cosmos_kernels
