// CPU backward kernel of the bidirectional WKV operator (schema in bi_wkv_ops.cpp).
//
// Work is split over (batch element, group of blocks of kLanes channels). Inside a block every
// loop runs over the channels innermost: they are contiguous in memory and independent, so the
// compiler turns the per-channel scan math into SIMD code. A block switches to per-element frames
// for a chunk as soon as one of its channels needs them (see bi_wkv_scan.h).
#include <torch/library.h>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>

#include <tuple>
#include <vector>

#include "bi_wkv_backward.h"
#include "bi_wkv_cpu_common.h"

namespace visionmix {
namespace wkv {

namespace {

template <typename scalar_t, typename acc_t>
WKV_CPU_CLONES void backward_group(const acc_t* w, const acc_t* u, const scalar_t* k,
                                   const scalar_t* v, const acc_t* y, const acc_t* gy,
                                   const acc_t* lse_off, const acc_t* lse_ref, scalar_t* dk,
                                   scalar_t* dv, const Geometry& g, int64_t count, acc_t* weights,
                                   double* states, double* dw, double* du) {
  const int64_t n = g.nchunks;
  auto store = [&](int64_t blk, int64_t lanes) {
    acc_t* pw = weights + blk * n * lanes;
    double* p = states + 5 * blk * n * lanes;
    const int64_t m = n * lanes;
    return AdjointStore<acc_t>{pw, p, p + m, p + 2 * m, p + 3 * m, p + 4 * m};
  };
  if (count == 0) {
    const Geometry g1{g.T, g.C, n, 1};
    backward_block<scalar_t, acc_t, 1>(w, u, k, v, y, gy, lse_off, lse_ref, dk, dv, g1,
                                       store(0, 1), dw, du);
    return;
  }
  thread_local std::vector<BackwardLanes<acc_t, kLanes>> lanes;
  lanes.resize(static_cast<size_t>(count));
  AdjointChunk<acc_t, kLanes> rec;
  for (int64_t blk = 0; blk < count; ++blk) lanes[blk].init(w + blk * kLanes);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t blk = 0; blk < count; ++blk) {
      const int64_t c = blk * kLanes;
      backward_first<scalar_t, acc_t, kLanes>(w + c, u + c, k + c, v + c, y + c, gy + c,
                                              lse_off + c, lse_ref + c, g, j, lanes[blk],
                                              store(blk, kLanes), rec);
    }
  for (int64_t j = n - 1; j >= 0; --j)
    for (int64_t blk = 0; blk < count; ++blk) {
      const int64_t c = blk * kLanes;
      backward_second<scalar_t, acc_t, kLanes>(w + c, u + c, k + c, v + c, y + c, gy + c,
                                               lse_off + c, lse_ref + c, dk + c, dv + c, g, j,
                                               lanes[blk], store(blk, kLanes), rec);
    }
  for (int64_t blk = 0; blk < count; ++blk)
    for (int c = 0; c < kLanes; ++c) {
      dw[blk * kLanes + c] = -lanes[blk].dw[c];
      du[blk * kLanes + c] = lanes[blk].du[c];
    }
}

using Bwd = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

Bwd backward_cpu(const at::Tensor& w_in, const at::Tensor& u_in, const at::Tensor& k_in,
                 const at::Tensor& v_in, const at::Tensor& y_in, const at::Tensor& gy_in,
                 const at::Tensor& off_in, const at::Tensor& ref_in) {
  check_backward_args(w_in, u_in, k_in, v_in, y_in, gy_in, off_in, ref_in);
  const at::Tensor k = k_in.contiguous(), v = v_in.contiguous(), y = y_in.contiguous(),
                   gy = gy_in.contiguous(), lse_off = off_in.contiguous(),
                   lse_ref = ref_in.contiguous();
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2), n = num_chunks(T);
  const Geometry g{T, C, n, kLanes};
  at::Tensor dk = at::empty_like(k), dv = at::empty_like(v);
  at::Tensor dw_b = at::zeros({B, C}, k.options().dtype(at::kDouble));
  at::Tensor du_b = at::zeros({B, C}, k.options().dtype(at::kDouble));
  if (dk.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "bi_wkv_backward_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const std::vector<acc_t> wv = to_vector<acc_t>(w_in), uv = to_vector<acc_t>(u_in);
      const scalar_t *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>();
      const acc_t *yp = y.data_ptr<acc_t>(), *gp = gy.data_ptr<acc_t>();
      const acc_t *op = lse_off.data_ptr<acc_t>(), *rp = lse_ref.data_ptr<acc_t>();
      scalar_t *dkp = dk.data_ptr<scalar_t>(), *dvp = dv.data_ptr<scalar_t>();
      double *dwp = dw_b.data_ptr<double>(), *dup = du_b.data_ptr<double>();
      const std::vector<Task> tasks = make_tasks(B, C);
      at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
        thread_local std::vector<acc_t> weights;  // chunk-start adjoint states of the first scan
        thread_local std::vector<double> states;
        for (int64_t i = begin; i < end; ++i) {
          const Task& tk = tasks[i];
          const int64_t lanes = tk.count ? tk.count * kLanes : 1;
          weights.resize(static_cast<size_t>(n * lanes));
          states.resize(static_cast<size_t>(5 * n * lanes));
          const int64_t x = tk.b * T * C + tk.c0, p = tk.b * C + tk.c0;
          backward_group<scalar_t, acc_t>(wv.data() + tk.c0, uv.data() + tk.c0, kp + x, vp + x,
                                          yp + x, gp + x, op + x, rp + tk.b * n * C + tk.c0,
                                          dkp + x, dvp + x, g, tk.count, weights.data(),
                                          states.data(), dwp + p, dup + p);
        }
      });
    });
  }
  return {dw_b.sum(0).to(w_in.scalar_type()), du_b.sum(0).to(u_in.scalar_type()), dk, dv};
}

}  // namespace
}  // namespace wkv
}  // namespace visionmix

TORCH_LIBRARY_IMPL(visionmix_native, CPU, m) { m.impl("bi_wkv_backward", &visionmix::wkv::backward_cpu); }
