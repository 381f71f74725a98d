// Block kernels of the bidirectional WKV operator: the chunk loops of the forward pass over a block
// of W channels of one batch element, built on bi_wkv_scan.h (the backward pass is in
// bi_wkv_backward.h). The CPU runs them with W = 16 (its channel loops vectorise) and the CUDA
// kernel with W = 1 per thread, so the CPU tests exercise the code the GPU runs.
//
// Each pass scans the sequence twice. The first scan (keys or queries before the current one)
// only keeps the state at every chunk start; the second scan runs backwards and, for each chunk,
// first replays the first scan over that chunk from its stored start state into small buffers,
// then combines it with its own state. No buffer grows with T, and the exps of a chunk are
// computed once for both directions.
#pragma once

#include "bi_wkv_scan.h"

namespace visionmix {
namespace wkv {

// A block is W channels of one batch element. Element (t, lane) of a (B, T, C) tensor is at
// ptr[t * C + lane], chunk j of lse_ref at ref[j * C + lane] and chunk j of a chunk-state store at
// store[j * ss + lane].
struct Geometry {
  int64_t T, C, nchunks, ss;
};

WKV_HD int64_t chunk_end(const Geometry& g, int64_t s) {
  return s + kChunk < g.T ? s + kChunk : g.T;
}

// Host only: start loading row t + ahead (clamped to the sequence) of a (T, C) view, one row per
// row processed. The scans walk chunks of rows C elements apart, half of them in reverse order,
// which hardware prefetchers follow poorly once the data no longer fits in the caches.
template <typename T>
WKV_HD void prefetch_row(const T* p, const Geometry& g, int64_t t, int64_t ahead) {
#if !defined(__CUDA_ARCH__) && defined(__GNUC__)
  int64_t r = t + ahead;
  r = r < 0 ? 0 : (r >= g.T ? g.T - 1 : r);
  __builtin_prefetch(p + r * g.C);
#endif
}

template <typename acc_t, int W>
struct ChunkKeys {
  acc_t kmax[W], kmin[W];
  bool fast;  // every lane of the block can share one frame over the chunk
};

template <typename scalar_t, typename acc_t, int W>
WKV_HD ChunkKeys<acc_t, W> scan_keys(const scalar_t* __restrict__ k, const Geometry& g, int64_t s,
                                     int64_t e, const acc_t* w) {
  ChunkKeys<acc_t, W> r;
  for (int c = 0; c < W; ++c) r.kmax[c] = r.kmin[c] = static_cast<acc_t>(k[s * g.C + c]);
  for (int64_t t = s + 1; t < e; ++t)
    for (int c = 0; c < W; ++c) {
      const acc_t x = static_cast<acc_t>(k[t * g.C + c]);
      r.kmax[c] = x > r.kmax[c] ? x : r.kmax[c];
      r.kmin[c] = x < r.kmin[c] ? x : r.kmin[c];
    }
  r.fast = true;
  for (int c = 0; c < W; ++c)
    r.fast = r.fast && chunk_is_fast(r.kmax[c], r.kmin[c], static_cast<int>(e - s), w[c]);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Forward. The first scan carries (num, den) = sum over earlier keys of e^{...} (v, 1).

template <typename acc_t>
struct KVStore {
  acc_t *num, *den;
  double* sigma;
};

// One replayed chunk, indexed [(t - s) * W + lane]: the state before key t, e^{k_t - kmax} and the
// frame (per key in slow chunks; frame[lane] for the whole of a fast chunk).
template <typename acc_t, int W>
struct KVChunk {
  acc_t num[kChunk * W], den[kChunk * W], ek[kChunk * W];
  double frame[kChunk * W];
};

// The keys-before scan over chunk [s, e), recording into rec when kRecord.
template <bool kRecord, typename scalar_t, typename acc_t, int W>
WKV_HD void kv_scan_chunk(const acc_t* __restrict__ w, const scalar_t* __restrict__ k,
                          const scalar_t* __restrict__ v, const Geometry& g, int64_t s, int64_t e,
                          const ChunkKeys<acc_t, W>& keys, const acc_t* hi, const acc_t* lo,
                          acc_t* num, acc_t* den, double* sigma, KVChunk<acc_t, W>& rec) {
  if (keys.fast) {
    acc_t feed[W];
    double frame[W];
    for (int c = 0; c < W; ++c) {
      const Frame<acc_t> f = enter_chunk<acc_t>(sigma[c], keys.kmax[c]);
      num[c] *= f.carry;
      den[c] *= f.carry;
      feed[c] = f.feed;
      frame[c] = f.frame;
      if constexpr (kRecord) rec.frame[c] = f.frame;
    }
    for (int64_t t = s; t < e; ++t) {
      const int64_t o = t * g.C, i = (t - s) * W;
      prefetch_row(k, g, t, kRecord ? -kChunk : kChunk);  // the next chunk in scan order
      prefetch_row(v, g, t, kRecord ? -kChunk : kChunk);
      for (int c = 0; c < W; ++c) {
        const acc_t ek = vexp(static_cast<acc_t>(k[o + c]) - keys.kmax[c]);
        if constexpr (kRecord) {
          rec.num[i + c] = num[c];
          rec.den[i + c] = den[c];
          rec.ek[i + c] = ek;
        }
        const acc_t ef = ek * feed[c];
        num[c] = decay_push(num[c], hi[c], lo[c], ef * static_cast<acc_t>(v[o + c]));
        den[c] = decay_push(den[c], hi[c], lo[c], ef);
      }
    }
    for (int c = 0; c < W; ++c) sigma[c] = frame[c] + renormalise(num[c], den[c]);
  } else {
    for (int64_t t = s; t < e; ++t) {
      const int64_t o = t * g.C, i = (t - s) * W;
      prefetch_row(k, g, t, kRecord ? -kChunk : kChunk);
      prefetch_row(v, g, t, kRecord ? -kChunk : kChunk);
      for (int c = 0; c < W; ++c) {
        if constexpr (kRecord) {
          rec.num[i + c] = num[c];
          rec.den[i + c] = den[c];
          rec.frame[i + c] = sigma[c];
        }
        slow_push_kv(sigma[c], num[c], den[c], static_cast<acc_t>(k[o + c]),
                     static_cast<acc_t>(v[o + c]), w[c]);
      }
    }
  }
}

// Per-block state of the forward pass between chunks: the decay and the two scans.
template <typename acc_t, int W>
struct ForwardLanes {
  acc_t hi[W], lo[W], num[W], den[W], cn[W], cd[W];
  double sigma[W], cs[W];  // log-scales of (num, den), keys before, and (cn, cd), keys after
  WKV_HD void init(const acc_t* w) {
    for (int c = 0; c < W; ++c) {
      const Decay<acc_t> d = make_decay(w[c]);
      hi[c] = d.hi;
      lo[c] = d.lo;
      num[c] = den[c] = cn[c] = cd[c] = acc_t(0);
      sigma[c] = cs[c] = kEmpty;
    }
  }
};

// First scan, chunk j (ascending order): store its start state, then advance over it.
template <typename scalar_t, typename acc_t, int W>
WKV_HD void forward_first(const acc_t* __restrict__ w, const scalar_t* __restrict__ k,
                          const scalar_t* __restrict__ v, const Geometry& g, int64_t j,
                          ForwardLanes<acc_t, W>& ln, KVStore<acc_t> store,
                          KVChunk<acc_t, W>& rec) {
  const int64_t s = j * kChunk, e = chunk_end(g, s);
  for (int c = 0; c < W; ++c) {
    store.num[j * g.ss + c] = ln.num[c];
    store.den[j * g.ss + c] = ln.den[c];
    store.sigma[j * g.ss + c] = ln.sigma[c];
  }
  const auto keys = scan_keys<scalar_t, acc_t, W>(k, g, s, e, w);
  kv_scan_chunk<false, scalar_t, acc_t, W>(w, k, v, g, s, e, keys, ln.hi, ln.lo, ln.num, ln.den,
                                           ln.sigma, rec);
}

// Second scan, chunk j (descending order): replay the first scan over the chunk from its stored
// start state, run the keys-after scan and mix both with the diagonal into y and lse.
template <typename scalar_t, typename acc_t, int W>
WKV_HD void forward_second(const acc_t* __restrict__ w, const acc_t* __restrict__ u,
                           const scalar_t* __restrict__ k, const scalar_t* __restrict__ v,
                           acc_t* __restrict__ y, acc_t* __restrict__ lse_off,
                           acc_t* __restrict__ lse_ref, const Geometry& g, int64_t j,
                           ForwardLanes<acc_t, W>& ln, KVStore<acc_t> store,
                           KVChunk<acc_t, W>& rec) {
  const int64_t s = j * kChunk, e = chunk_end(g, s);
  const auto keys = scan_keys<scalar_t, acc_t, W>(k, g, s, e, w);
  acc_t num[W], den[W], hi[W], lo[W], cn[W], cd[W];
  double sigma[W], cs[W];
  for (int c = 0; c < W; ++c) {
    num[c] = store.num[j * g.ss + c];
    den[c] = store.den[j * g.ss + c];
    sigma[c] = store.sigma[j * g.ss + c];
    hi[c] = ln.hi[c], lo[c] = ln.lo[c], cn[c] = ln.cn[c], cd[c] = ln.cd[c], cs[c] = ln.cs[c];
  }
  kv_scan_chunk<true, scalar_t, acc_t, W>(w, k, v, g, s, e, keys, hi, lo, num, den, sigma, rec);
  acc_t* ref = lse_ref + j * g.C;
  if (keys.fast) {
    acc_t feed[W], mf[W], mb[W], md[W];
    for (int c = 0; c < W; ++c) {
      const Frame<acc_t> f = enter_chunk<acc_t>(cs[c], keys.kmax[c]);
      cn[c] *= f.carry;
      cd[c] *= f.carry;
      feed[c] = f.feed;
      cs[c] = f.frame;
      const Mix<acc_t> m = mix_factors<acc_t>(
          rec.frame[c], f.frame, static_cast<double>(u[c]) + static_cast<double>(keys.kmax[c]));
      ref[c] = m.ref;
      mf[c] = m.fwd;
      mb[c] = m.bwd;
      md[c] = m.diag;
    }
    for (int64_t t = e - 1; t >= s; --t) {
      const int64_t o = t * g.C, i = (t - s) * W;
      prefetch_row(y, g, t, -kChunk);
      prefetch_row(lse_off, g, t, -kChunk);
      for (int c = 0; c < W; ++c) {
        const acc_t ek = rec.ek[i + c], vv = static_cast<acc_t>(v[o + c]), ed = md[c] * ek;
        const acc_t n = mf[c] * rec.num[i + c] + mb[c] * cn[c] + ed * vv;
        const acc_t d = mf[c] * rec.den[i + c] + mb[c] * cd[c] + ed;
        y[o + c] = n / d;
        lse_off[o + c] = vlog(d);
        const acc_t ef = ek * feed[c];
        cn[c] = decay_push(cn[c], hi[c], lo[c], ef * vv);
        cd[c] = decay_push(cd[c], hi[c], lo[c], ef);
      }
    }
    for (int c = 0; c < W; ++c) cs[c] += renormalise(cn[c], cd[c]);
  } else {
    for (int64_t t = e - 1; t >= s; --t) {
      const int64_t o = t * g.C, i = (t - s) * W;
      for (int c = 0; c < W; ++c) {
        const acc_t kk = static_cast<acc_t>(k[o + c]), vv = static_cast<acc_t>(v[o + c]);
        const Mix<acc_t> m = mix_factors<acc_t>(rec.frame[i + c], cs[c],
                                                static_cast<double>(u[c]) + static_cast<double>(kk));
        if (t == e - 1) ref[c] = m.ref;
        const acc_t n = m.fwd * rec.num[i + c] + m.bwd * cn[c] + m.diag * vv;
        const acc_t d = m.fwd * rec.den[i + c] + m.bwd * cd[c] + m.diag;
        y[o + c] = n / d;
        lse_off[o + c] = static_cast<acc_t>(static_cast<double>(m.ref) - static_cast<double>(ref[c]) +
                                            static_cast<double>(vlog(d)));
        slow_push_kv(cs[c], cn[c], cd[c], kk, vv, w[c]);
      }
    }
  }
  for (int c = 0; c < W; ++c) ln.cn[c] = cn[c], ln.cd[c] = cd[c], ln.cs[c] = cs[c];
}

// Forward of one block; k, v, y, lse_off and lse_ref point at its first channel, store holds
// nchunks rows for the chunk-start states. y is written in the accumulation type: the backward
// pass needs it to the precision it was computed with (see bi_wkv_backward.h). The normaliser of
// every query is lse = lse_ref[chunk] + lse_off.
template <typename scalar_t, typename acc_t, int W>
WKV_HD void forward_block(const acc_t* w, const acc_t* u, const scalar_t* k, const scalar_t* v,
                          acc_t* y, acc_t* lse_off, acc_t* lse_ref, const Geometry& g,
                          KVStore<acc_t> store) {
  ForwardLanes<acc_t, W> ln;
  KVChunk<acc_t, W> rec;
  ln.init(w);
  for (int64_t j = 0; j < g.nchunks; ++j)
    forward_first<scalar_t, acc_t, W>(w, k, v, g, j, ln, store, rec);
  for (int64_t j = g.nchunks - 1; j >= 0; --j)
    forward_second<scalar_t, acc_t, W>(w, u, k, v, y, lse_off, lse_ref, g, j, ln, store, rec);
}

}  // namespace wkv
}  // namespace visionmix
