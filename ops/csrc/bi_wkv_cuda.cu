// CUDA kernels of the bidirectional WKV operator (schemas in bi_wkv_ops.cpp).
//
// One thread per (batch, channel) runs the block kernels of bi_wkv_kernels.h with W = 1: the same
// code the CPU runs (and its tests check), fp32 accumulation for fp16 / bf16 / fp32 inputs.
// The scan is sequential in time with its state in registers and its scratch in global memory,
// so T is unlimited; the scratch is laid out like the inputs, (B, T, C), so the threads of a warp
// (consecutive channels) touch consecutive addresses.
#include <torch/library.h>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <tuple>

#include "bi_wkv_backward.h"
#include "bi_wkv_checks.h"

namespace visionmix {
namespace wkv {

namespace {

// Small blocks spread the few B * C threads over as many multiprocessors as possible.
constexpr int kThreads = 32;

// Chunk-start states live in (B, nchunks, C) tensors: for thread (b, c), chunk j is at
// [(b * nchunks + j) * C + c], i.e. row stride C from its own origin.
template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(const acc_t* w, const acc_t* u, const scalar_t* k, const scalar_t* v,
                               acc_t* y, acc_t* lse_off, acc_t* lse_ref, acc_t* s_num,
                               acc_t* s_den, double* s_sigma, int64_t B, int64_t T, int64_t C) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= B * C) return;
  const int64_t b = idx / C, c = idx % C, n = num_chunks(T);
  const Geometry g{T, C, n, C};
  const int64_t x = b * T * C + c, r = b * n * C + c;
  const KVStore<acc_t> store{s_num + r, s_den + r, s_sigma + r};
  forward_block<scalar_t, acc_t, 1>(w + c, u + c, k + x, v + x, y + x, lse_off + x, lse_ref + r, g,
                                    store);
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(const acc_t* w, const acc_t* u, const scalar_t* k,
                                const scalar_t* v, const acc_t* y, const acc_t* gy,
                                const acc_t* lse_off, const acc_t* lse_ref, scalar_t* dk,
                                scalar_t* dv, double* dw, double* du, acc_t* s_w, double* s_p,
                                int64_t B, int64_t T, int64_t C) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= B * C) return;
  const int64_t b = idx / C, c = idx % C, n = num_chunks(T), m = B * n * C;
  const Geometry g{T, C, n, C};
  const int64_t x = b * T * C + c, r = b * n * C + c;
  // s_p holds the five double planes (P, R, P1, R1, sigma), each shaped (B, nchunks, C).
  const AdjointStore<acc_t> store{s_w + r,         s_p + r,         s_p + m + r,
                                  s_p + 2 * m + r, s_p + 3 * m + r, s_p + 4 * m + r};
  backward_block<scalar_t, acc_t, 1>(w + c, u + c, k + x, v + x, y + x, gy + x, lse_off + x,
                                     lse_ref + r, dk + x, dv + x, g, store, dw + idx, du + idx);
}

unsigned int grid_for(int64_t threads) {
  return static_cast<unsigned int>((threads + kThreads - 1) / kThreads);
}

using Fwd = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Bwd = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

Fwd forward_cuda(const at::Tensor& w_in, const at::Tensor& u_in, const at::Tensor& k_in,
                 const at::Tensor& v_in) {
  check_forward_args(w_in, u_in, k_in, v_in);
  const c10::cuda::CUDAGuard guard(k_in.device());
  const at::Tensor k = k_in.contiguous(), v = v_in.contiguous();
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2), n = num_chunks(T);
  const auto acc_dtype = at::toOpMathType(k.scalar_type());
  const auto acc = k.options().dtype(acc_dtype), dbl = k.options().dtype(at::kDouble);
  at::Tensor y = at::empty({B, T, C}, acc);
  at::Tensor lse_off = at::empty({B, T, C}, acc), lse_ref = at::empty({B, n, C}, acc);
  if (y.numel() == 0) return {y, lse_off, lse_ref};
  const at::Tensor w = w_in.to(acc_dtype).contiguous(), u = u_in.to(acc_dtype).contiguous();
  at::Tensor s_num = at::empty({B, n, C}, acc), s_den = at::empty({B, n, C}, acc);
  at::Tensor s_sigma = at::empty({B, n, C}, dbl);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "bi_wkv_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t, acc_t><<<grid_for(B * C), kThreads, 0, stream>>>(
        w.data_ptr<acc_t>(), u.data_ptr<acc_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
        y.data_ptr<acc_t>(), lse_off.data_ptr<acc_t>(), lse_ref.data_ptr<acc_t>(),
        s_num.data_ptr<acc_t>(), s_den.data_ptr<acc_t>(), s_sigma.data_ptr<double>(), B, T, C);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {y, lse_off, lse_ref};
}

Bwd backward_cuda(const at::Tensor& w_in, const at::Tensor& u_in, const at::Tensor& k_in,
                  const at::Tensor& v_in, const at::Tensor& y_in, const at::Tensor& gy_in,
                  const at::Tensor& off_in, const at::Tensor& ref_in) {
  check_backward_args(w_in, u_in, k_in, v_in, y_in, gy_in, off_in, ref_in);
  const c10::cuda::CUDAGuard guard(k_in.device());
  const at::Tensor k = k_in.contiguous(), v = v_in.contiguous(), y = y_in.contiguous(),
                   gy = gy_in.contiguous(), lse_off = off_in.contiguous(),
                   lse_ref = ref_in.contiguous();
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2), n = num_chunks(T);
  const auto acc_dtype = at::toOpMathType(k.scalar_type());
  at::Tensor dk = at::empty_like(k), dv = at::empty_like(v);
  at::Tensor dw_b = at::zeros({B, C}, k.options().dtype(at::kDouble));
  at::Tensor du_b = at::zeros({B, C}, k.options().dtype(at::kDouble));
  if (dk.numel() > 0) {
    const at::Tensor w = w_in.to(acc_dtype).contiguous(), u = u_in.to(acc_dtype).contiguous();
    at::Tensor s_w = at::empty({B, n, C}, k.options().dtype(acc_dtype));
    at::Tensor s_p = at::empty({5, B, n, C}, k.options().dtype(at::kDouble));
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "bi_wkv_backward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      backward_kernel<scalar_t, acc_t><<<grid_for(B * C), kThreads, 0, stream>>>(
          w.data_ptr<acc_t>(), u.data_ptr<acc_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
          y.data_ptr<acc_t>(), gy.data_ptr<acc_t>(), lse_off.data_ptr<acc_t>(),
          lse_ref.data_ptr<acc_t>(), dk.data_ptr<scalar_t>(), dv.data_ptr<scalar_t>(),
          dw_b.data_ptr<double>(), du_b.data_ptr<double>(), s_w.data_ptr<acc_t>(),
          s_p.data_ptr<double>(), B, T, C);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {dw_b.sum(0).to(w_in.scalar_type()), du_b.sum(0).to(u_in.scalar_type()), dk, dv};
}

}  // namespace
}  // namespace wkv
}  // namespace visionmix

TORCH_LIBRARY_IMPL(visionmix_native, CUDA, m) {
  m.impl("bi_wkv_forward", &visionmix::wkv::forward_cuda);
  m.impl("bi_wkv_backward", &visionmix::wkv::backward_cuda);
}
