// pybind11 bindings of the CUDA kernels (csrc/cosmos_kernels.h): plain integers in and out, no torch.
// Tensors arrive as data pointers with their strides in elements, the stream as the integer value of a
// cudaStream_t. The launchers in cosmos_kernels/cuda/ build these arguments from torch tensors.
// std::invalid_argument becomes ValueError, std::runtime_error (CUDA errors) RuntimeError.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cosmos_kernels.h"

namespace py = pybind11;
namespace ck = cosmos_kernels;

namespace {

// (data_ptr, stride(0), stride(1)) of a 3-D tensor whose last dim is contiguous.
using Rows = std::tuple<std::uintptr_t, std::int64_t, std::int64_t>;
// (B, S, T, D): batch, tokens, modulation rows per batch, model width.
using AdalnSizes = std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>;

ck::RowsView rows_view(const std::optional<Rows>& rows) {
  ck::RowsView view;
  if (rows) {
    view.data = reinterpret_cast<const void*>(std::get<0>(*rows));
    view.batch_stride = std::get<1>(*rows);
    view.row_stride = std::get<2>(*rows);
  }
  return view;
}

ck::AdalnShape adaln_shape(const AdalnSizes& sizes) {
  return {std::get<0>(sizes), std::get<1>(sizes), std::get<2>(sizes), std::get<3>(sizes)};
}

void* pointer(std::uintptr_t address) { return reinterpret_cast<void*>(address); }

// The gated form is chosen by passing y, and its other arguments come with it. Presence decides, not
// the address: the data pointer of an empty tensor may be 0.
void check_gated_args(bool gated, std::initializer_list<bool> given, const char* names) {
  for (const bool present : given) {
    if (present != gated) {
      throw std::invalid_argument(std::string("with y given, pass ") + names + "; without y, none of them");
    }
  }
}

std::vector<std::string> split_archs(const std::string& archs) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= archs.size()) {
    const std::size_t end = std::min(archs.find(',', start), archs.size());
    if (end > start) parts.push_back(archs.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "CUDA kernels of cosmos_kernels (AdaLN modulation, Haar wavelets); see cosmos_kernels.cuda";

  m.def(
      "build_info",
      [] {
        py::dict info;
        info["cuda_compiler_version"] = COSMOS_KERNELS_CUDA_COMPILER_VERSION;
        info["cuda_runtime_version"] = ck::compiled_cuda_runtime_version();
        info["cuda_runtime"] = "static";
        info["cuda_archs"] = split_archs(COSMOS_KERNELS_CUDA_ARCHS);
        return info;
      },
      "How the extension was built: CUDA compiler and runtime versions, target architectures.");

  m.def(
      "adaln_forward",
      [](int dtype, const AdalnSizes& sizes, const Rows& x, const Rows& shift, const Rows& scale,
         std::uintptr_t out, float eps, int device, std::uintptr_t stream, const std::optional<Rows>& y,
         const std::optional<Rows>& gate, std::optional<std::uintptr_t> h_out) {
        const bool gated = y.has_value();
        check_gated_args(gated, {gate.has_value(), h_out.has_value()}, "gate and h_out");
        ck::adaln_forward(ck::dtype_from_code(dtype), adaln_shape(sizes), gated, rows_view(x), rows_view(y),
                          rows_view(gate), rows_view(shift), rows_view(scale), pointer(h_out.value_or(0)),
                          pointer(out), eps, device, pointer(stream));
      },
      py::arg("dtype"), py::arg("sizes"), py::arg("x"), py::arg("shift"), py::arg("scale"), py::arg("out"),
      py::arg("eps"), py::arg("device"), py::arg("stream"), py::arg("y") = std::nullopt,
      py::arg("gate") = std::nullopt, py::arg("h_out") = std::nullopt,
      py::call_guard<py::gil_scoped_release>(),
      "out = LN(v) * (1 + scale) + shift with v = x, or v = h = x + gate * y (stored to h_out) when y is "
      "given.");

  m.def(
      "adaln_backward_pieces",
      [](int dtype, const AdalnSizes& sizes, bool gated, int device) {
        return ck::adaln_backward_pieces(ck::dtype_from_code(dtype), adaln_shape(sizes), gated, device);
      },
      py::arg("dtype"), py::arg("sizes"), py::arg("gated"), py::arg("device"),
      py::call_guard<py::gil_scoped_release>(),
      "Token chunks per frame of adaln_backward on this device; its fp32 workspace holds "
      "(3 if gated else 2) * pieces * B * T * D floats.");

  m.def(
      "adaln_backward",
      [](int dtype, const AdalnSizes& sizes, const Rows& grad_out, const Rows& x, const Rows& scale,
         std::uintptr_t grad_x, std::uintptr_t grad_shift, std::uintptr_t grad_scale,
         std::uintptr_t workspace, std::int64_t pieces, float eps, int device, std::uintptr_t stream,
         const std::optional<Rows>& grad_h, const std::optional<Rows>& y, const std::optional<Rows>& gate,
         std::optional<std::uintptr_t> grad_y, std::optional<std::uintptr_t> grad_gate) {
        const bool gated = y.has_value();
        check_gated_args(gated,
                         {grad_h.has_value(), gate.has_value(), grad_y.has_value(), grad_gate.has_value()},
                         "grad_h, gate, grad_y and grad_gate");
        ck::adaln_backward(ck::dtype_from_code(dtype), adaln_shape(sizes), gated, rows_view(grad_out),
                           rows_view(x), rows_view(grad_h), rows_view(y), rows_view(gate), rows_view(scale),
                           pointer(grad_x), pointer(grad_y.value_or(0)), pointer(grad_shift),
                           pointer(grad_scale), pointer(grad_gate.value_or(0)),
                           static_cast<float*>(pointer(workspace)), pieces, eps, device, pointer(stream));
      },
      py::arg("dtype"), py::arg("sizes"), py::arg("grad_out"), py::arg("x"), py::arg("scale"),
      py::arg("grad_x"), py::arg("grad_shift"), py::arg("grad_scale"), py::arg("workspace"),
      py::arg("pieces"), py::arg("eps"), py::arg("device"), py::arg("stream"),
      py::arg("grad_h") = std::nullopt, py::arg("y") = std::nullopt, py::arg("gate") = std::nullopt,
      py::arg("grad_y") = std::nullopt, py::arg("grad_gate") = std::nullopt,
      py::call_guard<py::gil_scoped_release>(),
      "Gradients of adaln_forward; gated when y is given (x is then the stored h).");

  const auto haar_shape = [](std::int64_t batch, std::int64_t channels, std::int64_t half_frames,
                             std::int64_t half_height, std::int64_t half_width, std::int64_t front,
                             bool has_time) {
    ck::HaarShape shape;
    shape.batch = batch;
    shape.channels = channels;
    shape.half_frames = half_frames;
    shape.half_height = half_height;
    shape.half_width = half_width;
    shape.front = front;
    shape.has_time = has_time;
    return shape;
  };

  m.def(
      "haar_analysis",
      [haar_shape](int dtype, std::int64_t batch, std::int64_t channels, std::int64_t half_frames,
                   std::int64_t half_height, std::int64_t half_width, std::int64_t front, bool has_time,
                   std::uintptr_t x, std::uintptr_t y, float coeff, bool zero_front, int device,
                   std::uintptr_t stream) {
        ck::haar_analysis(ck::dtype_from_code(dtype),
                          haar_shape(batch, channels, half_frames, half_height, half_width, front, has_time),
                          pointer(x), pointer(y), coeff, zero_front, device, pointer(stream));
      },
      py::arg("dtype"), py::arg("batch"), py::arg("channels"), py::arg("half_frames"), py::arg("half_height"),
      py::arg("half_width"), py::arg("front"), py::arg("has_time"), py::arg("x"), py::arg("y"),
      py::arg("coeff"), py::arg("zero_front"), py::arg("device"), py::arg("stream"),
      py::call_guard<py::gil_scoped_release>(),
      "One Haar analysis level: contiguous x (B, C, T, H, W) or (B, C, H, W) into y (B, 8C or 4C, T2, H2, "
      "W2).");

  m.def(
      "haar_synthesis",
      [haar_shape](int dtype, std::int64_t batch, std::int64_t channels, std::int64_t half_frames,
                   std::int64_t half_height, std::int64_t half_width, std::int64_t front, bool has_time,
                   std::uintptr_t y, std::uintptr_t x, float coeff, bool sum_front, int device,
                   std::uintptr_t stream) {
        ck::haar_synthesis(ck::dtype_from_code(dtype),
                           haar_shape(batch, channels, half_frames, half_height, half_width, front, has_time),
                           pointer(y), pointer(x), coeff, sum_front, device, pointer(stream));
      },
      py::arg("dtype"), py::arg("batch"), py::arg("channels"), py::arg("half_frames"), py::arg("half_height"),
      py::arg("half_width"), py::arg("front"), py::arg("has_time"), py::arg("y"), py::arg("x"),
      py::arg("coeff"), py::arg("sum_front"), py::arg("device"), py::arg("stream"),
      py::call_guard<py::gil_scoped_release>(),
      "One Haar synthesis level, the transpose of haar_analysis (sum_front: the adjoint of the frame "
      "repeat).");
}
