// batch_omp: orthogonal matching pursuit on the Gram matrix (Batch-OMP, Rubinstein, Zibulevsky & Elad 2008),
// one sample per task, as the batched torch version in solvers/greedy.py: pick the atom of largest
// |c0 - gamma G_I|, border the Cholesky factor L of G_II, solve L L^T gamma = c0_I. Stops early as
// scikit-learn's orthogonal_mp_gram: best atom already chosen or negligible, or linearly dependent.

#include "common.h"

namespace {

template <typename T>
int64_t omp_sample(const T* c0, const T* G, int64_t m, int64_t k, T* z, std::vector<T>& L, std::vector<T>& r,
                   std::vector<T>& gamma, std::vector<int64_t>& idx, std::vector<char>& chosen) {
  const T eps = std::numeric_limits<T>::epsilon();
  std::copy(c0, c0 + m, r.begin());
  std::fill(chosen.begin(), chosen.end(), 0);
  int64_t t = 0;
  for (; t < k; ++t) {
    int64_t j = 0;
    T best = -1;
    for (int64_t l = 0; l < m; ++l)
      if (std::abs(r[l]) > best) best = std::abs(r[l]), j = l;
    if (chosen[j] || best * best < eps) break;
    T* row = L.data() + t * k;  // row t of L: w = L^{-1} G_Ij, then sqrt(G_jj - w.w)
    T schur = G[j * m + j];
    for (int64_t p = 0; p < t; ++p) {
      T acc = G[idx[p] * m + j];
      for (int64_t q = 0; q < p; ++q) acc -= L[p * k + q] * row[q];
      row[p] = acc / L[p * k + p];
      schur -= row[p] * row[p];
    }
    if (!(schur > eps)) break;
    row[t] = std::sqrt(schur);
    idx[t] = j;
    chosen[j] = 1;
    for (int64_t p = 0; p <= t; ++p) {  // L y = c0_I
      T acc = c0[idx[p]];
      for (int64_t q = 0; q < p; ++q) acc -= L[p * k + q] * gamma[q];
      gamma[p] = acc / L[p * k + p];
    }
    for (int64_t p = t; p >= 0; --p) {  // L^T gamma = y
      T acc = gamma[p];
      for (int64_t q = p + 1; q <= t; ++q) acc -= L[q * k + p] * gamma[q];
      gamma[p] = acc / L[p * k + p];
    }
    std::copy(c0, c0 + m, r.begin());
    for (int64_t p = 0; p <= t; ++p) {
      const T g = gamma[p];
      const T* grow = G + idx[p] * m;
      for (int64_t l = 0; l < m; ++l) r[l] -= g * grow[l];
    }
  }
  for (int64_t p = 0; p < t; ++p) z[idx[p]] = gamma[p];
  return t;
}

}  // namespace

// C0 = X D^T (n, m), G = D D^T (m, m), contiguous CPU tensors of one floating dtype; k atoms at most.
// Returns the codes and the steps taken per sample.
std::vector<torch::Tensor> batch_omp(torch::Tensor C0, torch::Tensor G, int64_t k) {
  TORCH_CHECK(C0.device().is_cpu() && C0.is_contiguous() && G.is_contiguous(), "batch_omp runs on contiguous CPU tensors");
  const int64_t n = C0.size(0), m = C0.size(1);
  auto Z = torch::zeros_like(C0);
  auto steps = torch::zeros({n}, C0.options().dtype(torch::kInt64));
  AT_DISPATCH_FLOATING_TYPES(C0.scalar_type(), "batch_omp", [&] {
    const scalar_t* c0 = C0.data_ptr<scalar_t>();
    const scalar_t* g = G.data_ptr<scalar_t>();
    scalar_t* z = Z.data_ptr<scalar_t>();
    int64_t* st = steps.data_ptr<int64_t>();
    at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> L(k * k), r(m), gamma(k);
      std::vector<int64_t> idx(k);
      std::vector<char> chosen(m);
      for (int64_t i = begin; i < end; ++i)
        st[i] = omp_sample<scalar_t>(c0 + i * m, g, m, k, z + i * m, L, r, gamma, idx, chosen);
    });
  });
  return {Z, steps};
}
