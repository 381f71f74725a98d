// Backward block kernels of the bidirectional WKV operator, on the same scheme as the forward
// ones in bi_wkv_kernels.h: a first scan over the queries before each key keeps its state at
// chunk starts, a second, reverse scan replays each chunk of the first and combines. Shared by the
// CPU (W = 16 lanes) and the CUDA kernel (W = 1 per thread).
#pragma once

#include "bi_wkv_kernels.h"

namespace visionmix {
namespace wkv {

// The adjoint scans (bi_wkv_scan.h) run over queries; keys receive dk, dv and dw terms. y and its
// gradient come in the accumulation type: dw and dk rely on sum_i p[t,i] (v_i - y_t) = 0, and y
// rounded to bf16 would break that cancellation by far more than the result.

template <typename acc_t>
struct AdjointStore {
  acc_t* W;
  double *P, *R, *P1, *R1, *sigma;
};

template <typename acc_t, int W>
struct AdjointLanes {
  acc_t sw[W];
  double sp[W], sr[W], sp1[W], sr1[W], sigma[W];
  WKV_HD Adjoint<acc_t> get(int c) const { return {sw[c], sp[c], sr[c], sp1[c], sr1[c]}; }
  WKV_HD void clear(int c) {
    sw[c] = acc_t(0);
    sp[c] = sr[c] = sp1[c] = sr1[c] = 0.0;
    sigma[c] = kEmpty;
  }
  WKV_HD void set(int c, const Adjoint<acc_t>& a) {
    sw[c] = a.W, sp[c] = a.P, sr[c] = a.R, sp1[c] = a.P1, sr1[c] = a.R1;
  }
};

// One replayed chunk, [(t - s) * W + lane]: e^{k_t - kmax}, e^{-lse_t - top} and the parts of dv
// and of sum_t p[t,i] g_t y_t that come from earlier queries.
template <typename acc_t, int W>
struct AdjointChunk {
  acc_t ek[kChunk * W], eq[kChunk * W], pv[kChunk * W], py[kChunk * W];
};

enum class AdjointMode { kState, kReplay, kCombine };

// The rows of the next chunk in scan order that a mode reads (see prefetch_row): the first scan
// goes up; the replay and the combination of the second scan go down, and the replay, which comes
// first, fetches for both.
template <AdjointMode kMode, typename scalar_t, typename acc_t>
WKV_HD void prefetch_next(const scalar_t* k, const scalar_t* v, const acc_t* y,
                          const acc_t* gy, const acc_t* lse_off, const scalar_t* dk,
                          const scalar_t* dv, const Geometry& g, int64_t t) {
  if constexpr (kMode == AdjointMode::kCombine) return;
  constexpr int64_t ahead = kMode == AdjointMode::kState ? kChunk : -kChunk;
  prefetch_row(k, g, t, ahead);
  prefetch_row(y, g, t, ahead);
  prefetch_row(gy, g, t, ahead);
  prefetch_row(lse_off, g, t, ahead);
  if constexpr (kMode == AdjointMode::kReplay) {
    prefetch_row(v, g, t, ahead);
    prefetch_row(dk, g, t, ahead);
    prefetch_row(dv, g, t, ahead);
  }
}

// One chunk of an adjoint scan. kState: queries before, state only (first scan). kReplay: the same
// with outputs, recorded into rec. kCombine: queries after, combined with rec into dk and dv.
// top[c] is the largest log-weight -lse_t of the chunk's queries.
template <AdjointMode kMode, typename scalar_t, typename acc_t, int W>
WKV_HD void adjoint_chunk(const acc_t* __restrict__ w, const acc_t* __restrict__ u,
                          const scalar_t* __restrict__ k, const scalar_t* __restrict__ v,
                          const acc_t* __restrict__ y, const acc_t* __restrict__ gy,
                          const acc_t* __restrict__ lse_off, const acc_t* __restrict__ ref,
                          scalar_t* __restrict__ dk, scalar_t* __restrict__ dv, const Geometry& g,
                          int64_t s, int64_t e, const ChunkKeys<acc_t, W>& keys, const double* top,
                          const acc_t* hi, const acc_t* lo, const double* full,
                          AdjointLanes<acc_t, W>& st,
                          AdjointChunk<acc_t, W>& rec, double* dw, double* du) {
  constexpr bool kDown = kMode == AdjointMode::kCombine;
  if (keys.fast) {
    acc_t cq[W], feed[W], os[W], dg[W];
    double frame[W];
    for (int c = 0; c < W; ++c) {
      const Frame<acc_t> f = enter_chunk<acc_t>(st.sigma[c], top[c]);
      Adjoint<acc_t> a = st.get(c);
      adjoint_scale(a, f.carry);
      st.set(c, a);
      frame[c] = f.frame;
      feed[c] = f.feed;
      const double kmax = keys.kmax[c];
      cq[c] = static_cast<acc_t>(-static_cast<double>(ref[c]) - top[c]);  // e^{cq - off} <= 1
      os[c] = exp_diff<acc_t>(kmax + f.frame, 0.0);  // <= T e^{kFastSpan + 1}: p[t,i] <= 1
      dg[c] = exp_diff<acc_t>(static_cast<double>(u[c]) + kmax + top[c], 0.0);  // <= e^kFastSpan
    }
    for (int64_t n = 0; n < e - s; ++n) {
      const int64_t t = kDown ? e - 1 - n : s + n, o = t * g.C, i = (t - s) * W;
      prefetch_next<kMode>(k, v, y, gy, lse_off, dk, dv, g, t);
      for (int c = 0; c < W; ++c) {
        Adjoint<acc_t> a = st.get(c);
        const acc_t gg = gy[o + c], yy = y[o + c];
        const acc_t eq = kDown ? rec.eq[i + c] : vexp(cq[c] - lse_off[o + c]);
        if constexpr (kMode != AdjointMode::kState) {
          const acc_t ek0 = kDown ? rec.ek[i + c] : vexp(static_cast<acc_t>(k[o + c]) - keys.kmax[c]);
          const acc_t vv = static_cast<acc_t>(v[o + c]), ek = ek0 * os[c];
          dw[c] += ek * (vv * a.P1 - a.R1);
          const acc_t op = static_cast<acc_t>(ek * a.P), orr = static_cast<acc_t>(ek * a.R);
          if constexpr (kDown) {
            const acc_t pg = ek0 * eq * dg[c] * gg;  // p_ii g_i
            const acc_t dvv = rec.pv[i + c] + op + pg;
            dv[o + c] = static_cast<scalar_t>(dvv);
            dk[o + c] = static_cast<scalar_t>(vv * dvv - (rec.py[i + c] + orr + pg * yy));
            du[c] += pg * (vv - yy);
          } else {
            rec.ek[i + c] = ek0;
            rec.eq[i + c] = eq;
            rec.pv[i + c] = op;
            rec.py[i + c] = orr;
          }
        }
        adjoint_push(a, hi[c], lo[c], full[c], eq * feed[c], gg, yy);
        st.set(c, a);
      }
    }
    for (int c = 0; c < W; ++c) {
      Adjoint<acc_t> a = st.get(c);
      st.sigma[c] = adjoint_close(a, frame[c]);
      st.set(c, a);
    }
  } else {
    for (int64_t n = 0; n < e - s; ++n) {
      const int64_t t = kDown ? e - 1 - n : s + n, o = t * g.C, i = (t - s) * W;
      prefetch_next<kMode>(k, v, y, gy, lse_off, dk, dv, g, t);
      for (int c = 0; c < W; ++c) {
        Adjoint<acc_t> a = st.get(c);
        const acc_t kk = static_cast<acc_t>(k[o + c]);
        const acc_t gg = gy[o + c], yy = y[o + c];
        const double nl = -(static_cast<double>(ref[c]) + static_cast<double>(lse_off[o + c]));
        if constexpr (kMode != AdjointMode::kState) {
          const acc_t vv = static_cast<acc_t>(v[o + c]);
          const acc_t ro = exp_diff<acc_t>(st.sigma[c], -static_cast<double>(kk));
          dw[c] += ro * (vv * a.P1 - a.R1);
          const acc_t op = static_cast<acc_t>(ro * a.P), orr = static_cast<acc_t>(ro * a.R);
          if constexpr (kDown) {
            const acc_t pg = exp_diff<acc_t>(static_cast<double>(u[c]) + kk, -nl) * gg;
            const acc_t dvv = rec.pv[i + c] + op + pg;
            dv[o + c] = static_cast<scalar_t>(dvv);
            dk[o + c] = static_cast<scalar_t>(vv * dvv - (rec.py[i + c] + orr + pg * yy));
            du[c] += pg * (vv - yy);
          } else {
            rec.pv[i + c] = op;
            rec.py[i + c] = orr;
          }
        }
        adjoint_slow_push(a, st.sigma[c], nl, gg, yy, w[c]);
        st.set(c, a);
      }
    }
  }
}

// Largest log-weight -lse_t = -(ref + lse_off) among the queries of a chunk.
template <typename acc_t, int W>
WKV_HD void chunk_top(const acc_t* __restrict__ lse_off, const acc_t* ref, const Geometry& g,
                      int64_t s, int64_t e, double* top) {
  acc_t lo[W];
  for (int c = 0; c < W; ++c) lo[c] = lse_off[s * g.C + c];
  for (int64_t t = s + 1; t < e; ++t)
    for (int c = 0; c < W; ++c) {
      const acc_t x = lse_off[t * g.C + c];
      lo[c] = x < lo[c] ? x : lo[c];
    }
  for (int c = 0; c < W; ++c) top[c] = -(static_cast<double>(ref[c]) + static_cast<double>(lo[c]));
}

// Per-block state of the backward pass between chunks.
template <typename acc_t, int W>
struct BackwardLanes {
  acc_t hi[W], lo[W];
  double full[W], dw[W], du[W];
  AdjointLanes<acc_t, W> up, down;
  WKV_HD void init(const acc_t* w) {
    for (int c = 0; c < W; ++c) {
      const Decay<acc_t> d = make_decay(w[c]);
      hi[c] = d.hi;
      lo[c] = d.lo;
      full[c] = d.full;
      dw[c] = du[c] = 0.0;
      up.clear(c);
      down.clear(c);
    }
  }
};

// First scan (queries before), chunk j in ascending order: store the start state, advance.
template <typename scalar_t, typename acc_t, int W>
WKV_HD void backward_first(const acc_t* w, const acc_t* u, const scalar_t* k, const scalar_t* v,
                           const acc_t* y, const acc_t* gy, const acc_t* lse_off,
                           const acc_t* lse_ref, const Geometry& g, int64_t j,
                           BackwardLanes<acc_t, W>& ln, AdjointStore<acc_t> store,
                           AdjointChunk<acc_t, W>& rec) {
  const int64_t s = j * kChunk, e = chunk_end(g, s), r = j * g.ss;
  for (int c = 0; c < W; ++c) {
    store.W[r + c] = ln.up.sw[c];
    store.P[r + c] = ln.up.sp[c], store.R[r + c] = ln.up.sr[c];
    store.P1[r + c] = ln.up.sp1[c], store.R1[r + c] = ln.up.sr1[c];
    store.sigma[r + c] = ln.up.sigma[c];
  }
  double top[W];
  const auto keys = scan_keys<scalar_t, acc_t, W>(k, g, s, e, w);
  chunk_top<acc_t, W>(lse_off, lse_ref + j * g.C, g, s, e, top);
  adjoint_chunk<AdjointMode::kState, scalar_t, acc_t, W>(
      w, u, k, v, y, gy, lse_off, lse_ref + j * g.C, nullptr, nullptr, g, s, e, keys, top, ln.hi,
      ln.lo, ln.full, ln.up, rec, ln.dw, ln.du);
}

// Second scan (queries after), chunk j in descending order: replay the first scan over the chunk
// from its stored start state, then combine into dk and dv.
template <typename scalar_t, typename acc_t, int W>
WKV_HD void backward_second(const acc_t* w, const acc_t* u, const scalar_t* k, const scalar_t* v,
                            const acc_t* y, const acc_t* gy, const acc_t* lse_off,
                            const acc_t* lse_ref, scalar_t* dk, scalar_t* dv, const Geometry& g,
                            int64_t j, BackwardLanes<acc_t, W>& ln, AdjointStore<acc_t> store,
                            AdjointChunk<acc_t, W>& rec) {
  const int64_t s = j * kChunk, e = chunk_end(g, s), r = j * g.ss;
  for (int c = 0; c < W; ++c) {
    ln.up.sw[c] = store.W[r + c];
    ln.up.sp[c] = store.P[r + c], ln.up.sr[c] = store.R[r + c];
    ln.up.sp1[c] = store.P1[r + c], ln.up.sr1[c] = store.R1[r + c];
    ln.up.sigma[c] = store.sigma[r + c];
  }
  double top[W];
  const auto keys = scan_keys<scalar_t, acc_t, W>(k, g, s, e, w);
  chunk_top<acc_t, W>(lse_off, lse_ref + j * g.C, g, s, e, top);
  adjoint_chunk<AdjointMode::kReplay, scalar_t, acc_t, W>(
      w, u, k, v, y, gy, lse_off, lse_ref + j * g.C, dk, dv, g, s, e, keys, top, ln.hi, ln.lo,
      ln.full, ln.up, rec, ln.dw, ln.du);
  adjoint_chunk<AdjointMode::kCombine, scalar_t, acc_t, W>(
      w, u, k, v, y, gy, lse_off, lse_ref + j * g.C, dk, dv, g, s, e, keys, top, ln.hi, ln.lo,
      ln.full, ln.down, rec, ln.dw, ln.du);
}

// Backward of one block (layout as in forward_block); store holds nchunks rows. dw and du receive
// this batch element's per-channel sums.
template <typename scalar_t, typename acc_t, int W>
WKV_HD void backward_block(const acc_t* w, const acc_t* u, const scalar_t* k, const scalar_t* v,
                           const acc_t* y, const acc_t* gy, const acc_t* lse_off,
                           const acc_t* lse_ref, scalar_t* dk, scalar_t* dv, const Geometry& g,
                           AdjointStore<acc_t> store, double* dw, double* du) {
  BackwardLanes<acc_t, W> ln;
  AdjointChunk<acc_t, W> rec;
  ln.init(w);
  for (int64_t j = 0; j < g.nchunks; ++j)
    backward_first<scalar_t, acc_t, W>(w, u, k, v, y, gy, lse_off, lse_ref, g, j, ln, store, rec);
  for (int64_t j = g.nchunks - 1; j >= 0; --j)
    backward_second<scalar_t, acc_t, W>(w, u, k, v, y, gy, lse_off, lse_ref, dk, dv, g, j, ln,
                                        store, rec);
  for (int c = 0; c < W; ++c) {
    dw[c] = -ln.dw[c];
    du[c] = ln.du[c];
  }
}

}  // namespace wkv
}  // namespace visionmix
