// Pieces shared by the CPU forward and backward kernels (bi_wkv_cpu_forward.cpp,
// bi_wkv_cpu_backward.cpp): the lane width, the ISA clones, and the split of the work into tasks.
// The two directions live in separate translation units so that ninja compiles them in parallel.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <vector>

#include "bi_wkv_checks.h"
#include "bi_wkv_scan.h"

namespace visionmix {
namespace wkv {

constexpr int kLanes = 16;

// An ahead-of-time build (setup.py) compiles the kernels for AVX-512, AVX2 + FMA and baseline
// x86-64, and the dynamic loader picks the best one the CPU supports, so a wheel stays portable.
// A JIT build runs where it is compiled: the loader passes one -march for this CPU's level and
// defines VISIONMIX_WKV_HOST_ISA, which compiles a third of the code.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(VISIONMIX_WKV_HOST_ISA)
#define WKV_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WKV_CPU_CLONES
#endif

// A unit of parallel work: batch b, channels [c0, c0 + count * kLanes), or the single channel c0
// when count is 0.
struct Task {
  int64_t b, c0, count;
};

// Splits every batch element into groups of lane blocks, enough of them to keep all threads busy,
// plus one task per channel left over by the blocks.
inline std::vector<Task> make_tasks(int64_t B, int64_t C) {
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

}  // namespace wkv
}  // namespace visionmix
