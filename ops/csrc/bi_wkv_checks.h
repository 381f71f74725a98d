// Argument validation shared by the CPU and CUDA entry points (defined in bi_wkv_ops.cpp).
#pragma once

#include <ATen/core/Tensor.h>

namespace visionmix {
namespace wkv {

void check_forward_args(const at::Tensor& w, const at::Tensor& u, const at::Tensor& k,
                        const at::Tensor& v);
void check_backward_args(const at::Tensor& w, const at::Tensor& u, const at::Tensor& k,
                         const at::Tensor& v, const at::Tensor& y, const at::Tensor& gy,
                         const at::Tensor& lse_off, const at::Tensor& lse_ref);

}  // namespace wkv
}  // namespace visionmix
