// CPU kernels of the bidirectional WKV operator (schemas in bi_wkv_ops.cpp).
//
// Work is split over (batch element, group of blocks of kLanes channels). Inside a block every
// loop runs over the channels innermost: they are contiguous in memory and independent, so the
// compiler turns the per-channel scan math of bi_wkv_scan.h into SIMD code. A block switches to
// per-element frames for a chunk as soon as one of its channels needs them (see bi_wkv_scan.h).
#include <torch/library.h>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "bi_wkv_backward.h"
#include "bi_wkv_checks.h"

namespace visionmix {
namespace wkv {

namespace {

constexpr int kLanes = 16;

// The kernels are compiled for AVX-512, AVX2 + FMA and baseline x86-64; the dynamic loader picks
// the best one the CPU supports, so the binary stays portable (no -march).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define WKV_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WKV_CPU_CLONES
#endif

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

// A unit of parallel work: batch b, channels [c0, c0 + count * kLanes), or the single channel c0
// when count is 0.
struct Task {
  int64_t b, c0, count;
};

// Splits every batch element into groups of lane blocks, enough of them to keep all threads busy,
// plus one task per channel left over by the blocks.
std::vector<Task> make_tasks(int64_t B, int64_t C) {
  const int64_t blocks = C / kLanes;
  const int64_t want = 2 * static_cast<int64_t>(at::get_num_threads());
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(blocks, (want + B - 1) / B));
  std::vector<Task> tasks;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t p = 0; p < parts && blocks > 0; ++p) {
      const int64_t first = blocks * p / parts, last = blocks * (p + 1) / parts;
      if (last > first) tasks.push_back({b, first * kLanes, last - first});
    }
    for (int64_t c = blocks * kLanes; c < C; ++c) tasks.push_back({b, c, 0});
  }
  return tasks;
}

template <typename acc_t>
std::vector<acc_t> to_vector(const at::Tensor& x) {
  const at::Tensor c = x.to(at::kCPU, c10::CppTypeToScalarType<acc_t>::value).contiguous();
  return std::vector<acc_t>(c.data_ptr<acc_t>(), c.data_ptr<acc_t>() + c.numel());
}

using Fwd = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Bwd = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

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

TORCH_LIBRARY_IMPL(visionmix_native, CPU, m) {
  m.impl("bi_wkv_forward", &visionmix::wkv::forward_cpu);
  m.impl("bi_wkv_backward", &visionmix::wkv::backward_cpu);
}
