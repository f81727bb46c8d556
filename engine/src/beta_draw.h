// Exact Beta draws for recommend's exploration, without a distribution object
// per draw: Marsaglia-Tsang gamma variates (ACM TOMS 26(3), 2000) from a
// 53-bit uniform and Marsaglia's polar normal (both values used), on the
// caller's generator (xoshiro256++: a quarter of the draws' time was
// std::mt19937_64's). Private to engine/.
#pragma once

#include <cmath>
#include <cstdint>

namespace playbook {

// xoshiro256++ (Blackman and Vigna, 2019): 64-bit outputs, period 2^256 - 1,
// passes BigCrush; a few adds, xors and rotations per output against
// mt19937_64's 2.5 KB state and its twist. Seeded by SplitMix64 as its
// authors recommend (never the all-zero state). A UniformRandomBitGenerator.
class Xoshiro256pp {
 public:
  using result_type = uint64_t;
  explicit Xoshiro256pp(uint64_t seed_value = 0) { seed(seed_value); }
  void seed(uint64_t x) {
    for (uint64_t& w : s_) {
      uint64_t z = (x += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      w = z ^ (z >> 31);
    }
  }
  // The state as given (tests: the reference implementation's sequence).
  void set_state(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { s_[0] = a, s_[1] = b, s_[2] = c, s_[3] = d; }
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type(0); }
  result_type operator()() {
    const uint64_t result = Rotl(s_[0] + s_[3], 23) + s_[0];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

class BetaDraw {
 public:
  explicit BetaDraw(Xoshiro256pp* rng) : rng_(rng) {}

  // Uniform in (0, 1), never 0 or 1.
  double Uniform() { return (double((*rng_)() >> 11) + 0.5) * 0x1.0p-53; }

  // Standard normal: the polar method yields two per accepted pair.
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2 * Uniform() - 1;
      v = 2 * Uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s == 0);
    const double f = std::sqrt(-2 * std::log(s) / s);
    spare_ = v * f;
    has_spare_ = true;
    return u * f;
  }

  // Gamma(a, 1), a > 0. For a < 1: Gamma(a + 1) * U^(1/a).
  double Gamma(double a) {
    if (a < 1) {
      const double g = Gamma(a + 1);
      return g * std::pow(Uniform(), 1 / a);
    }
    const double d = a - 1.0 / 3, c = 1 / std::sqrt(9 * d);
    while (true) {
      double x, v;
      do {
        x = Normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const double u = Uniform(), x2 = x * x;
      if (u < 1 - 0.0331 * x2 * x2) return d * v;  // the squeeze: no log, almost always
      if (std::log(u) < 0.5 * x2 + d * (1 - v + std::log(v))) return d * v;
    }
  }

  // Beta(a, b), a, b > 0: X / (X + Y) for X ~ Gamma(a), Y ~ Gamma(b); the
  // mean when both underflow (tiny a and b).
  double Beta(double a, double b) {
    const double x = Gamma(a), y = Gamma(b);
    return x + y > 0 ? x / (x + y) : a / (a + b);
  }

 private:
  Xoshiro256pp* rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace playbook
