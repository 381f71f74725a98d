// CPU forward kernel of the bidirectional WKV operator (schema in bi_wkv_ops.cpp).
//
// Work is split over (batch element, group of blocks of kLanes channels). Inside a block every
// loop runs over the channels innermost: they are contiguous in memory and independent, so the
// compiler turns the per-channel scan math into SIMD code. A block switches to per-element frames
// for a chunk as soon as one of its channels needs them (see bi_wkv_scan.h).
#include <torch/library.h>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>

#include <tuple>
#include <vector>

#include "bi_wkv_kernels.h"
#include "bi_wkv_cpu_common.h"

namespace visionmix {
namespace wkv {

namespace {

// Runs a group of `count` lane blocks of one batch element (pointers at the first channel of the
// group; a count of 0 means a single channel, W = 1). The blocks are interleaved chunk by chunk,
// so that the rows of a chunk (and their memory pages) are visited once per group rather than
// once per block.
template <typename scalar_t, typename acc_t>
WKV_CPU_CLONES void forward_group(const acc_t* w, const acc_t* u, const scalar_t* k,
                                  const scalar_t* v, acc_t* y, acc_t* lse_off, acc_t* lse_ref,
                                  const Geometry& g, int64_t count, acc_t* vals, double* scales) {
  const int64_t n = g.nchunks;
  if (count == 0) {
    const Geometry g1{g.T, g.C, n, 1};
    forward_block<scalar_t, acc_t, 1>(w, u, k, v, y, lse_off, lse_ref, g1,
                                      KVStore<acc_t>{vals, vals + n, scales});
    return;
  }
  thread_local std::vector<ForwardLanes<acc_t, kLanes>> lanes;
  lanes.resize(static_cast<size_t>(count));
  KVChunk<acc_t, kLanes> rec;
  auto store = [&](int64_t blk) {
    acc_t* p = vals + 2 * blk * n * kLanes;
    return KVStore<acc_t>{p, p + n * kLanes, scales + blk * n * kLanes};
  };
  for (int64_t blk = 0; blk < count; ++blk) lanes[blk].init(w + blk * kLanes);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t blk = 0; blk < count; ++blk) {
      const int64_t c = blk * kLanes;
      forward_first<scalar_t, acc_t, kLanes>(w + c, k + c, v + c, g, j, lanes[blk], store(blk), rec);
    }
  for (int64_t j = n - 1; j >= 0; --j)
    for (int64_t blk = 0; blk < count; ++blk) {
      const int64_t c = blk * kLanes;
      forward_second<scalar_t, acc_t, kLanes>(w + c, u + c, k + c, v + c, y + c, lse_off + c,
                                              lse_ref + c, g, j, lanes[blk], store(blk), rec);
    }
}

using Fwd = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

Fwd forward_cpu(const at::Tensor& w_in, const at::Tensor& u_in, const at::Tensor& k_in,
                const at::Tensor& v_in) {
  check_forward_args(w_in, u_in, k_in, v_in);
  const at::Tensor k = k_in.contiguous(), v = v_in.contiguous();
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2), n = num_chunks(T);
  const Geometry g{T, C, n, kLanes};
  const auto acc_dtype = at::toOpMathType(k.scalar_type());
  at::Tensor y = at::empty({B, T, C}, k.options().dtype(acc_dtype));
  at::Tensor lse_off = at::empty({B, T, C}, k.options().dtype(acc_dtype));
  at::Tensor lse_ref = at::empty({B, n, C}, k.options().dtype(acc_dtype));
  if (y.numel() == 0) return {y, lse_off, lse_ref};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "bi_wkv_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const std::vector<acc_t> wv = to_vector<acc_t>(w_in), uv = to_vector<acc_t>(u_in);
    const scalar_t *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>();
    acc_t* yp = y.data_ptr<acc_t>();
    acc_t *op = lse_off.data_ptr<acc_t>(), *rp = lse_ref.data_ptr<acc_t>();
    const std::vector<Task> tasks = make_tasks(B, C);
    at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
      thread_local std::vector<acc_t> vals;  // chunk-start states of the first scan
      thread_local std::vector<double> scales;
      for (int64_t i = begin; i < end; ++i) {
        const Task& tk = tasks[i];
        const int64_t lanes = tk.count ? tk.count * kLanes : 1;
        vals.resize(static_cast<size_t>(2 * n * lanes));
        scales.resize(static_cast<size_t>(n * lanes));
        const int64_t x = tk.b * T * C + tk.c0;
        forward_group<scalar_t, acc_t>(wv.data() + tk.c0, uv.data() + tk.c0, kp + x, vp + x,
                                       yp + x, op + x, rp + tk.b * n * C + tk.c0, g, tk.count,
                                       vals.data(), scales.data());
      }
    });
  });
  return {y, lse_off, lse_ref};
}

}  // namespace
}  // namespace wkv
}  // namespace visionmix

TORCH_LIBRARY_IMPL(visionmix_native, CPU, m) { m.impl("bi_wkv_forward", &visionmix::wkv::forward_cpu); }
