// Exact Beta draws for recommend's exploration, without a distribution object
// per draw: Marsaglia-Tsang gamma variates (ACM TOMS 26(3), 2000) from a
// 53-bit uniform and Marsaglia's polar normal (both values used), on the
// caller's generator. Private to engine/.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace playbook {

class BetaDraw {
 public:
  explicit BetaDraw(std::mt19937_64* rng) : rng_(rng) {}

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
  std::mt19937_64* rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace playbook
