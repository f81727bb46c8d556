// The dot-product kernels against a double-precision reference, at every
// length up to a few registers' worth and at unaligned starts.
#include "simd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace playbook::simd {
namespace {

using KernelFn = float (*)(const float*, const float*, size_t);

void CheckKernel(const char* name, KernelFn fn) {
  if (!kernels::Supported(name)) GTEST_SKIP() << name << " is not supported on this CPU";
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> a(1100), b(1100);
  for (float& x : a) x = g(rng);
  for (float& x : b) x = g(rng);
  for (size_t offset : {0u, 1u, 3u}) {
    for (size_t n = 0; n <= 1030; n += (n < 70 ? 1 : 37)) {
      double want = 0, scale = 0;
      for (size_t i = 0; i < n; ++i) {
        want += double(a[offset + i]) * double(b[offset + i]);
        scale += std::fabs(double(a[offset + i]) * double(b[offset + i]));
      }
      const float got = fn(a.data() + offset, b.data() + offset, n);
      EXPECT_NEAR(double(got), want, 1e-5 * (scale + 1)) << name << " n=" << n << " offset=" << offset;
    }
  }
}

TEST(Simd, ScalarKernelMatchesReference) { CheckKernel("scalar", kernels::Scalar); }
TEST(Simd, Avx2KernelMatchesReference) { CheckKernel("avx2", kernels::Avx2); }
TEST(Simd, Avx512KernelMatchesReference) { CheckKernel("avx512", kernels::Avx512); }

TEST(Simd, DispatchPicksASupportedKernelAndAgrees) {
  const std::string k = Kernel();
  EXPECT_TRUE(k == "avx512" || k == "avx2" || k == "scalar") << k;
  EXPECT_TRUE(kernels::Supported(k.c_str()));
  std::vector<float> q(384), base(384 * 5), out(5);
  for (size_t i = 0; i < q.size(); ++i) q[i] = float(i % 7) - 3;
  for (size_t i = 0; i < base.size(); ++i) base[i] = float(i % 5) - 2;
  DotMany(q.data(), base.data(), 384, 5, out.data());
  for (size_t j = 0; j < 5; ++j) EXPECT_FLOAT_EQ(out[j], kernels::Scalar(q.data(), base.data() + j * 384, 384));
}

}  // namespace
}  // namespace playbook::simd
