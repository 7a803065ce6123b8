// Compiled CPU kernels, built on first use by _extension.py; each has a torch twin that runs elsewhere
// (and wherever these files cannot be built), and the tests hold the two equal. This header holds what every
// kernel file includes and the entry points that module.cpp binds; each kernel's helpers stay in its own
// file's anonymous namespace. torch/types.h rather than torch/extension.h: the kernels need tensors only,
// and the full header takes three times as long to compile in each file (module.cpp adds the bindings).

#pragma once

#include <torch/types.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

// x.y, with y[idx[i]] for y where idx is given; eight partial sums, which the compiler maps onto vector
// registers (a plain loop adds in order: without reassociation it runs at one add's latency per element)
template <typename T>
T dot(const T* x, const T* y, int64_t n, const int64_t* idx = nullptr) {
  T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int r = 0; r < 8; ++r) part[r] += x[i + r] * y[idx ? idx[i + r] : i + r];
  T sum = 0;
  for (; i < n; ++i) sum += x[i] * y[idx ? idx[i] : i];
  for (int r = 0; r < 8; ++r) sum += part[r];
  return sum;
}

// The lasso's duality gap (not normalised) in the Gram form the kernels share: for a code z with the exact
// correlations q = c0 - zG (c0 = xD^T), ||x - zD||^2 = xx - z.c0 - z.q; l1 = ||z||_1 and dual is the largest
// correlation (signed under positive) that the dual point is scaled by s = min(1, alpha / dual) to meet.
template <typename T>
T gram_form_gap(T xx, T zc0, T zq, T l1, T dual, T alpha, T& s) {
  s = dual > alpha ? alpha / dual : T(1);
  const T r2 = std::max(xx - zc0 - zq, T(0));
  return std::max(T(0.5) * (1 - s) * (1 - s) * r2 + alpha * l1 - s * zq, T(0));
}

// Gap of the codes supported in idx[0..k) (all coordinates when idx is null) from q on those coordinates;
// dual is the largest (signed if positive) correlation the dual point must scale to alpha.
template <typename T>
T gram_gap(const T* c0, const T* z, const T* q, const int64_t* idx, int64_t k, T xx, T alpha, bool positive,
           T& s) {
  T zc0 = 0, zq = 0, l1 = 0, dual = 0;
  for (int64_t p = 0; p < k; ++p) {
    const int64_t j = idx ? idx[p] : p;
    zc0 += z[j] * c0[j];
    zq += z[j] * q[j];
    l1 += std::abs(z[j]);
    dual = std::max(dual, positive ? q[j] : std::abs(q[j]));
  }
  return gram_form_gap(xx, zc0, zq, l1, dual, alpha, s);
}

// The soft-thresholding (shrinkage) of t by alpha; with positive, onto z >= 0
template <typename T>
T soft(T t, T alpha, bool positive) {
  return positive ? std::max(t - alpha, T(0)) : (t > alpha ? t - alpha : (t < -alpha ? t + alpha : T(0)));
}

// homotopy.cpp
std::vector<torch::Tensor> lasso_path(torch::Tensor C0, torch::Tensor G, torch::Tensor X, double alpha,
                                      bool positive, int64_t max_steps, int64_t kmax, bool lar, int64_t max_active,
                                      double tol, bool round32);
// cd.cpp
std::vector<torch::Tensor> cyclic_cd(torch::Tensor C0, torch::Tensor G, torch::Tensor xx, torch::Tensor Z,
                                     double alpha, bool positive, int64_t max_sweeps, double tol);
// fista.cpp
std::vector<torch::Tensor> fista_working_sets(torch::Tensor C0, torch::Tensor G, torch::Tensor xx, torch::Tensor Z,
                                              double alpha, bool positive, double L, int64_t max_iter, double tol,
                                              int64_t check_every, bool momentum, bool restart);
// omp.cpp
std::vector<torch::Tensor> batch_omp(torch::Tensor X, torch::Tensor D, torch::Tensor C0, torch::Tensor G,
                                     int64_t k);
// dictionary.cpp
void bcd_sweep(torch::Tensor D, torch::Tensor A, torch::Tensor B, bool positive);
