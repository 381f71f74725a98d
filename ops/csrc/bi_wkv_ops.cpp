// Operator schemas of the native Bi-WKV kernels and their shared argument checks.
//
// The kernels register as torch.ops.visionmix_native.* (CPU in bi_wkv_cpu_forward.cpp and
// bi_wkv_cpu_backward.cpp, CUDA in bi_wkv_cuda.cu), so the dispatcher picks the device. Autograd and the public operator
// visionmix::bi_wkv live in Python (visionmix/ops/__init__.py). Only light headers are included:
// torch/extension.h would triple the JIT build time.
#include <Python.h>
#include <torch/library.h>

#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>

#include "bi_wkv_checks.h"
#include "bi_wkv_scan.h"

namespace visionmix {
namespace wkv {

void check_forward_args(const at::Tensor& w, const at::Tensor& u, const at::Tensor& k,
                        const at::Tensor& v) {
  TORCH_CHECK(k.dim() == 3, "bi_wkv: k must be (B, T, C), got ", k.sizes());
  TORCH_CHECK(v.sizes() == k.sizes(), "bi_wkv: v ", v.sizes(), " must match k ", k.sizes());
  TORCH_CHECK(v.scalar_type() == k.scalar_type(), "bi_wkv: k and v must share a dtype");
  TORCH_CHECK(w.dim() == 1 && w.size(0) == k.size(2) && u.sizes() == w.sizes(),
              "bi_wkv: w and u must be (C,) with C = ", k.size(2), ", got ", w.sizes(), " and ",
              u.sizes());
  TORCH_CHECK(w.is_floating_point() && u.is_floating_point(), "bi_wkv: w and u must be floating");
  TORCH_CHECK(w.device() == k.device() && u.device() == k.device() && v.device() == k.device(),
              "bi_wkv: all inputs must be on one device");
}

void check_backward_args(const at::Tensor& w, const at::Tensor& u, const at::Tensor& k,
                         const at::Tensor& v, const at::Tensor& y, const at::Tensor& gy,
                         const at::Tensor& lse_off, const at::Tensor& lse_ref) {
  check_forward_args(w, u, k, v);
  TORCH_CHECK(y.sizes() == k.sizes() && gy.sizes() == k.sizes() && lse_off.sizes() == k.sizes(),
              "bi_wkv_backward: y, grad_y and lse_off must be shaped like k");
  const auto acc = at::toOpMathType(k.scalar_type());
  TORCH_CHECK(y.scalar_type() == acc && gy.scalar_type() == acc,
              "bi_wkv_backward: y and grad_y must be in the accumulation dtype ", acc);
  TORCH_CHECK(lse_ref.dim() == 3 && lse_ref.size(0) == k.size(0) &&
                  lse_ref.size(1) == num_chunks(k.size(1)) && lse_ref.size(2) == k.size(2),
              "bi_wkv_backward: lse_ref has the wrong shape ", lse_ref.sizes());
  TORCH_CHECK(lse_off.scalar_type() == lse_ref.scalar_type() &&
                  lse_off.scalar_type() == acc,
              "bi_wkv_backward: lse_off and lse_ref must be in the accumulation dtype");
  TORCH_CHECK(y.device() == k.device() && gy.device() == k.device() &&
                  lse_off.device() == k.device() && lse_ref.device() == k.device(),
              "bi_wkv_backward: all inputs must be on one device");
}

}  // namespace wkv
}  // namespace visionmix

TORCH_LIBRARY(visionmix_native, m) {
  // y comes in the accumulation dtype (float32 for half inputs), which the backward needs.
  m.def("bi_wkv_forward(Tensor w, Tensor u, Tensor k, Tensor v) -> (Tensor, Tensor, Tensor)");
  m.def(
      "bi_wkv_backward(Tensor w, Tensor u, Tensor k, Tensor v, Tensor y, Tensor grad_y, "
      "Tensor lse_off, Tensor lse_ref) -> (Tensor, Tensor, Tensor, Tensor)");
  // lse_ref holds one value per kChunk queries; Python checks that it agrees with this build.
  m.def("chunk_size() -> int", []() -> int64_t { return visionmix::wkv::kChunk; });
}

// An (empty) Python module, so that the ahead-of-time build is importable; importing it loads the
// shared library and runs the registrations above.
#define WKV_CAT2(a, b) a##b
#define WKV_CAT(a, b) WKV_CAT2(a, b)
#define WKV_STR2(a) #a
#define WKV_STR(a) WKV_STR2(a)
PyMODINIT_FUNC WKV_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) {
  static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, WKV_STR(TORCH_EXTENSION_NAME),
                                   "Bi-WKV kernels, registered as torch.ops.visionmix_native",
                                   -1, nullptr};
  return PyModule_Create(&def);
}
