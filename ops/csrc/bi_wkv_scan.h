// Scan math of the bidirectional WKV operator, shared by the CPU and the CUDA kernels.
//
// For one (batch, channel) pair the operator is a softmax over keys i for every query t with
//   l[t,i] = -(|t-i|-1) w + k[i]   (i != t),   l[t,t] = u + k[t],
// computed in O(T) as a forward scan (keys i < t), a backward scan (keys i > t) and the diagonal.
//
// Numerics. Every state is a value in the accumulation type times exp(frame), where the frame (or
// log-scale, sigma) is a double: it grows like |w| T and in float would lose the absolute precision
// that the mixing of the two directions needs. Exponents are formed as double differences, then
// evaluated in the accumulation type. Chunks of kChunk steps share one frame ("fast" chunks: one
// exp per element, the decay e^{-w} is a multiplication); a chunk whose keys span too wide a range
// for one frame gets a frame per element ("slow" chunks). No intermediate overflows, and whatever
// underflows lies below the float resolution of the result.
// Rounding that repeats identically at every step adds up linearly in T, so the scans avoid it:
// e^{-w} is applied as a float head plus a correction (a rounded e^{-w} raised to the power T is
// off by up to T * 2^-24), renormalisation is by powers of two, and a carried state is rescaled
// only when new keys outweigh it by e^kLazy, so that its rounding no longer matters.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define WKV_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Forced so that the block kernels are compiled into each ISA clone of their CPU callers.
#define WKV_HD inline __attribute__((always_inline))
#else
#define WKV_HD inline
#endif

namespace visionmix {
namespace wkv {

constexpr int kChunk = 32;
// A chunk may share one frame when (max k - min k) + |w| * len <= kFastSpan: every value that
// matters then lies within e^{+-(kFastSpan + log T)} of the frame, far from float over/underflow.
constexpr float kFastSpan = 40.f;
// A carried state is rescaled only when incoming keys outweigh it by more than e^kLazy; a state
// that is rescaled by similar factors step after step accumulates the same rounding each time.
constexpr double kLazy = 20.0;
// Log-scale of a state that holds no key yet; exact in float and double, exp() of it is 0.
constexpr double kEmpty = -0x1p100;
constexpr double kLn2 = 0.69314718055994530942;

WKV_HD int64_t num_chunks(int64_t T) { return (T + kChunk - 1) / kChunk; }

// ---------------------------------------------------------------------------------------------
// exp / log. On the host they are branch-free polynomials so that loops over channels vectorise
// (a libm call per element would serialise them); on the device the CUDA math library is used.
#if !defined(__CUDA_ARCH__)
inline float float_from_bits(int32_t i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int32_t bits_from_float(float f) { int32_t i; std::memcpy(&i, &f, 4); return i; }

inline float host_expf(float x) {
  // e^x = 2^n e^r with n = round(x / ln 2) and |r| <= ln2 / 2; ln 2 is split so that n * hi is
  // exact. Taylor to degree 7 leaves a relative truncation error of 5e-9.
  const float xc = x < -87.5f ? -87.5f : (x > 88.75f ? 88.75f : x);
  const float n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  const float r = (xc - n * 0.693145751953125f) - n * 1.428606820309417e-06f;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  int32_t ni = static_cast<int32_t>(n);
  const int32_t bump = ni > 127 ? 1 : 0;  // 2^128 has no float encoding: use 2^127 * 2
  ni -= bump;
  float res = p * float_from_bits((ni + 127) << 23) * (bump ? 2.f : 1.f);
  res = x < -87.33654f ? 0.f : res;  // below FLT_MIN: flushed, as no caller needs denormals
  res = x > 88.72284f ? INFINITY : res;
  return x != x ? x : res;
}

inline float host_logf(float x) {
  // x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172.
  const int32_t bits = bits_from_float(x);
  int32_t e = ((bits >> 23) & 0xff) - 127;
  float m = float_from_bits((bits & 0x007fffff) | 0x3f800000);
  const bool big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  e = big ? e + 1 : e;
  const float s = (m - 1.f) / (m + 1.f);
  const float s2 = s * s;
  float p = 1.f / 11.f;
  p = p * s2 + 1.f / 9.f;
  p = p * s2 + 1.f / 7.f;
  p = p * s2 + 1.f / 5.f;
  p = p * s2 + 1.f / 3.f;
  p = p * s2 + 1.f;
  const float fe = static_cast<float>(e);
  float res = (fe * 0.693145751953125f + 2.f * s * p) + fe * 1.428606820309417e-06f;
  res = x < 1.17549435e-38f ? (x == 0.f ? -INFINITY : NAN) : res;  // denormals never reach here
  res = x > 3.40282347e+38f ? x : res;                              // +inf
  return x != x ? x : res;
}
#endif

WKV_HD float vexp(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return host_expf(x);
#endif
}
WKV_HD double vexp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return std::exp(x);
#endif
}
WKV_HD float vlog(float x) {
#if defined(__CUDA_ARCH__)
  return logf(x);
#else
  return host_logf(x);
#endif
}
WKV_HD double vlog(double x) {
#if defined(__CUDA_ARCH__)
  return ::log(x);
#else
  return std::log(x);
#endif
}

// exp(a - b) for two log-scales: the difference is formed in double, so that large |scales| keep
// their precision, and its part below the resolution of T is applied as a first-order correction.
template <class T>
WKV_HD T exp_diff(double a, double b) {
  const double d = a - b;
  const T head = static_cast<T>(d);
  return vexp(head) * (T(1) + static_cast<T>(d - static_cast<double>(head)));
}

// Multiplier that brings ref into [1, 2) by a power of two (exact), and the log-scale it removes.
// A ref that is zero or denormal (an empty state) is left alone.
WKV_HD float renorm_factor(float ref, double& shift) {
#if defined(__CUDA_ARCH__)
  int e;
  frexpf(ref, &e);
  e -= 1;
  const bool ok = ref >= 1.17549435e-38f && ref <= 3.40282347e+38f;
  shift = ok ? e * kLn2 : 0.0;
  return ok ? ldexpf(1.f, -e) : 1.f;
#else
  const int32_t e = ((bits_from_float(ref) >> 23) & 0xff) - 127;
  const bool ok = e > -127 && e < 127;
  shift = ok ? e * kLn2 : 0.0;
  return ok ? float_from_bits((127 - e) << 23) : 1.f;
#endif
}
WKV_HD double renorm_factor(double ref, double& shift) {
  int e = 0;
  const double m = frexp(ref, &e);
  const bool ok = ref > 0.0 && m == m && ref < 1e300;
  shift = ok ? (e - 1) * kLn2 : 0.0;
  return ok ? ldexp(1.0, 1 - e) : 1.0;
}

// ---------------------------------------------------------------------------------------------
// Decay e^{-w} split into a float-exact head and a correction, and in double.
template <class T>
struct Decay {
  T hi, lo;
  double full;
};
template <class T>
WKV_HD Decay<T> make_decay(T w) {
  Decay<T> r;
  r.full = vexp(-static_cast<double>(w));
  r.hi = static_cast<T>(r.full);
  r.lo = static_cast<T>(r.full - static_cast<double>(r.hi));
  return r;
}
// s <- e^{-w} s + x
template <class T>
WKV_HD T decay_push(T s, T hi, T lo, T x) { return s * hi + (s * lo + x); }

// Whether a chunk of len keys can share one frame. With two keys or more every query of the chunk
// has a neighbour in it, whose weight bounds its normaliser from below.
WKV_HD bool chunk_is_fast(float kmax, float kmin, int len, float w) {
  return len >= 2 && (kmax - kmin) + fabsf(w) * len <= kFastSpan;
}
WKV_HD bool chunk_is_fast(double kmax, double kmin, int len, double w) {
  return len >= 2 && (kmax - kmin) + fabs(w) * len <= kFastSpan;
}

// ---------------------------------------------------------------------------------------------
// Frame of a fast chunk: a state carried with log-scale sigma meets keys whose log-weights peak at
// top. The frame stays sigma (carry = 1, feed = e^{top - sigma} <= e^kLazy) unless the keys
// dominate, in which case the frame is top, feed = 1 and the state is scaled by carry < e^-kLazy.
template <class T>
struct Frame {
  double frame;
  T carry, feed;
};
template <class T>
WKV_HD Frame<T> enter_chunk(double sigma, double top) {
  Frame<T> f;
  const bool jump = top > sigma + kLazy;
  f.frame = jump ? top : sigma;
  f.carry = jump ? exp_diff<T>(sigma, top) : T(1);
  f.feed = jump ? T(1) : exp_diff<T>(top, sigma);
  return f;
}

// Mixing factors of y = (A + C + e^{u+k} v) / (B + D + e^{u+k}) when the forward state is in frame
// ff, the backward one in fb and the diagonal is e^{fd} times the caller's factor. All three are
// scaled to the largest so the sum cannot overflow; lse = ref + log(denominator).
template <class T>
struct Mix {
  T ref, fwd, bwd, diag;
};
template <class T>
WKV_HD Mix<T> mix_factors(double ff, double fb, double fd) {
  double g = ff > fb ? ff : fb;
  g = fd > g ? fd : g;
  Mix<T> m;
  m.ref = static_cast<T>(g);
  m.fwd = exp_diff<T>(ff, m.ref);
  m.bwd = exp_diff<T>(fb, m.ref);
  m.diag = exp_diff<T>(fd, m.ref);
  return m;
}

// Rescales a (num, den) state by a power of two so that den lies in [1, 2) (exact); returns the
// log-scale taken out, to be added to the state's frame.
template <class T>
WKV_HD double renormalise(T& num, T& den) {
  double shift;
  const T r = renorm_factor(den, shift);
  num *= r;
  den *= r;
  return shift;
}

// One key of a slow chunk pushed into a (value, weight) state with log-scale sigma: the state is
// decayed by one step (in the log-scale, so this cannot overflow whatever w is), then the key is
// added in the state's frame unless it outweighs the state by more than e^kLazy.
template <class T>
WKV_HD void slow_push_kv(double& sigma, T& num, T& den, T k, T v, T w) {
  const double f0 = sigma - static_cast<double>(w);
  const bool jump = static_cast<double>(k) > f0 + kLazy;
  const double f1 = jump ? static_cast<double>(k) : f0;
  const T keep = jump ? exp_diff<T>(f0, f1) : T(1), add = exp_diff<T>(k, f1);
  num = num * keep + add * v;
  den = den * keep + add;
  sigma = f1 + renormalise(num, den);
}

// ---------------------------------------------------------------------------------------------
// Backward pass. Over queries t the adjoint scans carry, in frame exp(sigma):
//   W = sum e^{-(d-1)w} e^{-lse_t}        (positive, sets the scale)
//   P = sum e^{-(d-1)w} e^{-lse_t} g_t,    R = same with g_t y_t,
//   P1, R1 = same weighted by (d - 1),     where d is the distance to the key.
// Key i then receives dv = e^{k_i} (P + Pbar) + p_ii g_i and the dw terms e^{k_i}(v_i P1 - R1).
// The signed states are long sums whose terms cancel (for dw by orders of magnitude when w < 0
// pulls the weight to both far ends); they are kept in double, so that their own rounding stays far
// below the fp32 rounding of the terms, and the decay is one double product. The exps stay in T.
// In fast chunks the output for key i is e^{k_i - kmax} * e^{kmax + frame} * state, where the
// second factor is bounded by T e^{kFastSpan + 1} because no p[t,i] exceeds 1.
template <class T>
struct Adjoint {
  T W;
  double P, R, P1, R1;
};
template <class T>
WKV_HD void adjoint_scale(Adjoint<T>& s, T f) {
  const double fd = f;
  s.W *= f; s.P *= fd; s.R *= fd; s.P1 *= fd; s.R1 *= fd;
}
// One query pushed with weight eq; hi, lo and full are the parts of Decay.
template <class T>
WKV_HD void adjoint_push(Adjoint<T>& s, T hi, T lo, double full, T eq, T g, T y) {
  const double q = static_cast<double>(eq) * static_cast<double>(g);
  s.P1 = (s.P1 + s.P) * full;
  s.R1 = (s.R1 + s.R) * full;
  s.W = decay_push(s.W, hi, lo, eq);
  s.P = s.P * full + q;
  s.R = s.R * full + q * static_cast<double>(y);
}
// Chunk end: renormalise by W and return the new log-scale.
template <class T>
WKV_HD double adjoint_close(Adjoint<T>& s, double frame) {
  double shift;
  adjoint_scale(s, renorm_factor(s.W, shift));
  return frame + shift;
}
// Slow chunks: push query t with log-weight nl = -lse_t; as in slow_push_kv the decay of the
// carried state is applied to its log-scale.
template <class T>
WKV_HD void adjoint_slow_push(Adjoint<T>& s, double& sigma, double nl, T g, T y, T w) {
  const double f0 = sigma - static_cast<double>(w);
  const bool jump = nl > f0 + kLazy;
  const double f = jump ? nl : f0;
  adjoint_scale(s, jump ? exp_diff<T>(f0, f) : T(1));
  const T eq = exp_diff<T>(nl, f);
  const double q = static_cast<double>(eq) * static_cast<double>(g);
  s.P1 += s.P;
  s.R1 += s.R;
  s.W += eq;
  s.P += q;
  s.R += q * static_cast<double>(y);
  sigma = adjoint_close(s, f);
}

}  // namespace wkv
}  // namespace visionmix
