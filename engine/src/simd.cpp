#include "simd.h"

#include <immintrin.h>

#include <string_view>

namespace playbook::simd {
namespace {

float DotScalar(const float* a, const float* b, size_t n) {
  // Four partial sums: the compiler vectorises this with SSE at -O2.
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

__attribute__((target("avx2,fma"))) float DotAvx2(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  if (i + 8 <= n) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    i += 8;
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float r = _mm_cvtss_f32(s);
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

__attribute__((target("avx512f"))) float DotAvx512(const float* a, const float* b, size_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  if (i + 16 <= n) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    i += 16;
  }
  if (i < n) {  // the tail under a mask: no scalar loop, no read past the end
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  // Reduced through memory: GCC 12's lane-extracting AVX-512 intrinsics
  // (_mm512_reduce_add_ps among them) trip -Wuninitialized at -O3.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(acc0, acc1));
  const __m256 half = _mm256_add_ps(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

using DotFn = float (*)(const float*, const float*, size_t);

struct Choice {
  DotFn fn;
  const char* name;
};

Choice Choose() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {DotAvx512, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {DotAvx2, "avx2"};
  return {DotScalar, "scalar"};
}

const Choice kChoice = Choose();

}  // namespace

float Dot(const float* a, const float* b, size_t n) { return kChoice.fn(a, b, n); }

void DotMany(const float* q, const float* base, size_t n, size_t count, float* out) {
  const DotFn fn = kChoice.fn;
  for (size_t j = 0; j < count; ++j) out[j] = fn(q, base + j * n, n);
}

const char* Kernel() { return kChoice.name; }

namespace kernels {
bool Supported(const char* name) {
  const std::string_view k(name);
  if (k == "scalar") return true;
  if (k == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (k == "avx512") return __builtin_cpu_supports("avx512f");
  return false;
}
float Scalar(const float* a, const float* b, size_t n) { return DotScalar(a, b, n); }
float Avx2(const float* a, const float* b, size_t n) { return DotAvx2(a, b, n); }
float Avx512(const float* a, const float* b, size_t n) { return DotAvx512(a, b, n); }
}  // namespace kernels

}  // namespace playbook::simd
