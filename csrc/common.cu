#include "common.cuh"

namespace cosmos_kernels {

DType dtype_from_code(int code) {
  switch (code) {
    case static_cast<int>(DType::kFloat32):
    case static_cast<int>(DType::kFloat16):
    case static_cast<int>(DType::kBFloat16):
      return static_cast<DType>(code);
  }
  throw std::invalid_argument(
      "cosmos_kernels: dtype code must be 0 (float32), 1 (float16) or 2 (bfloat16), got " +
      std::to_string(code));
}

int compiled_cuda_runtime_version() { return CUDART_VERSION; }

}  // namespace cosmos_kernels
