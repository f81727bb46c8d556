// Dot products with the widest vector unit the CPU has (AVX-512, AVX2+FMA,
// else a portable loop), chosen once at run time. Debian's faiss 1.7.3 is
// built without SIMD kernels (its fvec_inner_product is the scalar reference
// loop), so the HNSW distance and the ranking's MMR use these instead.
// Private to engine/.
#pragma once

#include <cstddef>

namespace playbook::simd {

// sum a[i] * b[i] for i < n. The result may differ from a sequential sum in
// the last bits (the lanes are summed in a tree).
float Dot(const float* a, const float* b, size_t n);

// out[j] = Dot(q, base + j * n, n) for j < count.
void DotMany(const float* q, const float* base, size_t n, size_t count, float* out);

// What Dot runs on this CPU: "avx512", "avx2" or "scalar".
const char* Kernel();

// Each kernel, for the tests: a kernel runs only where Supported(name).
namespace kernels {
bool Supported(const char* name);
float Scalar(const float* a, const float* b, size_t n);
float Avx2(const float* a, const float* b, size_t n);
float Avx512(const float* a, const float* b, size_t n);
}  // namespace kernels

}  // namespace playbook::simd
