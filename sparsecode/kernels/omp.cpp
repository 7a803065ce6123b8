// batch_omp: orthogonal matching pursuit on the Gram matrix (Batch-OMP, Rubinstein, Zibulevsky & Elad 2008),
// one sample per task, with the selection rule and early stops of scikit-learn's orthogonal_mp_gram (best
// atom already chosen or negligible, or linearly dependent on the chosen ones).
//
// With the chosen atoms I and the Cholesky factor L of G_II, the kernel keeps B = G_:I L^-T (m x t, one
// column per step) and y = L^-1 c0_I, so that the correlations are r = c0 - B y. Row j of B is L^-1 G_Ij,
// the new row of L: bordering the factor is a gather, and a step is one pass over the t columns of B
// (b = (G_:j - B w) / L_tt, r -= y_t b) in SIMD blocks, with no triangular solve; the codes come from one
// back substitution L^T gamma = y at the end. The torch twin (solvers/greedy.py) runs the same steps batched.

#include "common.h"

#include <cstring>

namespace {

template <typename T>
struct OmpWork {
  std::vector<T> B, L, r, y, res;  // B: k columns of m; L: k rows of k (lower); res: one residual x - zD
  std::vector<int64_t> idx;
  std::vector<char> chosen;
  OmpWork(int64_t m, int64_t k, int64_t p) : B(k * m), L(k * k), r(m), y(k), res(p), idx(k), chosen(m) {}
};

// 64 bytes of T (one AVX-512 register, two AVX2 ones) as a GCC/Clang vector
template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(64)));
  static constexpr int64_t width = 64 / sizeof(T);
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, const V& v) { std::memcpy(p, &v, sizeof v); }
};

// The first index of the largest |r[l]| (numpy's argmax), into j; returns that largest value. Each lane keeps
// its first largest value and where it was, then the lanes are compared (ties to the smaller index).
template <typename T>
T argmax_abs(const T* r, int64_t m, int64_t& j) {
  using S = Simd<T>;
  using M = decltype(typename S::V{} < typename S::V{});  // integer lanes as wide as T
  typename S::V top = {};
  M at = {}, here;
  for (int64_t q = 0; q < S::width; ++q) here[q] = q;
  int64_t l = 0;
  for (; l + S::width <= m; l += S::width, here += S::width) {
    const typename S::V v = S::load(r + l), mag = v < 0 ? -v : v;
    const M up = top < mag;
    top = up ? mag : top;
    at = up ? here : at;
  }
  T best = 0;
  j = 0;
  for (int64_t q = 0; q < S::width; ++q)
    if (top[q] > best || (top[q] == best && at[q] < j)) best = top[q], j = at[q];
  for (; l < m; ++l)
    if (std::abs(r[l]) > best) best = std::abs(r[l]), j = l;
  return best;
}

// b = (g - sum_p w[p] B[p m + .]) * scale and r -= y b on blocks of N vectors of atoms from l on (then N / 2,
// ...), the sums held in registers across the t columns of B: one pass over B per block rather than one pass
// over b per column.
template <typename T, int N>
void step_blocks(const T* g, const T* B, int64_t m, const T* w, int64_t t, T scale, T y, T* b, T* r, int64_t& l) {
  using S = Simd<T>;
  for (; l + N * S::width <= m; l += N * S::width) {
    typename S::V acc[N];
    for (int v = 0; v < N; ++v) acc[v] = S::load(g + l + v * S::width);
    for (int64_t p = 0; p < t; ++p) {
      const T* col = B + p * m + l;
      for (int v = 0; v < N; ++v) acc[v] -= w[p] * S::load(col + v * S::width);
    }
    for (int v = 0; v < N; ++v) {
      const typename S::V bv = acc[v] * scale;
      S::store(b + l + v * S::width, bv);
      S::store(r + l + v * S::width, S::load(r + l + v * S::width) - y * bv);
    }
  }
  if constexpr (N > 1) step_blocks<T, N / 2>(g, B, m, w, t, scale, y, b, r, l);
}

// Codes of one sample into z (zeros on entry); returns the steps taken.
template <typename T>
int64_t omp_sample(const T* c0, const T* G, int64_t m, int64_t k, T* z, OmpWork<T>& w) {
  const T eps = std::numeric_limits<T>::epsilon();
  T* r = w.r.data();
  const T* B = w.B.data();
  std::copy(c0, c0 + m, r);
  std::fill(w.chosen.begin(), w.chosen.end(), 0);
  int64_t j;
  T best = argmax_abs(r, m, j);
  int64_t t = 0;
  for (; t < k; ++t) {
    if (w.chosen[j] || best * best < eps) break;
    T* row = w.L.data() + t * k;  // L^-1 G_Ij = row j of B
    for (int64_t p = 0; p < t; ++p) row[p] = B[p * m + j];
    const T schur = G[j * m + j] - dot(row, row, t);
    if (!(schur > eps)) break;
    const T diag = std::sqrt(schur), yt = r[j] / diag;
    row[t] = diag;
    w.y[t] = yt;
    w.idx[t] = j;
    w.chosen[j] = 1;
    if (t + 1 == k) {
      ++t;
      break;
    }
    T* b = w.B.data() + t * m;  // b = (G_:j - B w) / diag, r -= y_t b
    const T inv = T(1) / diag;
    int64_t l = 0;
    step_blocks<T, 8>(G + j * m, B, m, row, t, inv, yt, b, r, l);
    for (; l < m; ++l) {
      T acc = G[j * m + l];
      for (int64_t p = 0; p < t; ++p) acc -= row[p] * B[p * m + l];
      b[l] = acc * inv;
      r[l] -= yt * b[l];
    }
    best = argmax_abs(r, m, j);
  }
  T* y = w.y.data();  // L^T gamma = y by columns, gamma overwriting y
  for (int64_t p = t - 1; p >= 0; --p) {
    const T* row = w.L.data() + p * k;
    const T g = y[p] / row[p];
    y[p] = g;
    for (int64_t q = 0; q < p; ++q) y[q] -= g * row[q];
    z[w.idx[p]] = g;
  }
  return t;
}

// ||x - zD||^2 / ||x||^2 from the t chosen atoms (the rest of z is zero)
template <typename T>
T relative_residual(const T* x, const T* D, int64_t p, const T* z, OmpWork<T>& w, int64_t t) {
  T* res = w.res.data();
  std::copy(x, x + p, res);
  for (int64_t s = 0; s < t; ++s) {
    const T g = z[w.idx[s]];
    const T* atom = D + w.idx[s] * p;
    for (int64_t f = 0; f < p; ++f) res[f] -= g * atom[f];
  }
  return dot(res, res, p) / std::max(dot(x, x, p), std::numeric_limits<T>::min());
}

}  // namespace

// X (n, p), D (m, p), C0 = X D^T (n, m), G = D D^T (m, m): contiguous CPU tensors of one floating dtype; k atoms
// at most. Returns the codes, the steps taken and the relative residual ||x - zD||^2 / ||x||^2 per sample.
std::vector<torch::Tensor> batch_omp(torch::Tensor X, torch::Tensor D, torch::Tensor C0, torch::Tensor G,
                                     int64_t k) {
  for (const auto& a : {X, D, C0, G})
    TORCH_CHECK(a.device().is_cpu() && a.is_contiguous() && a.scalar_type() == C0.scalar_type(),
                "batch_omp runs on contiguous CPU tensors of one dtype");
  const int64_t n = C0.size(0), m = C0.size(1), p = X.size(1);
  auto Z = torch::zeros_like(C0);
  auto steps = torch::zeros({n}, C0.options().dtype(torch::kInt64));
  auto residual = torch::empty({n}, C0.options());
  AT_DISPATCH_FLOATING_TYPES(C0.scalar_type(), "batch_omp", [&] {
    const scalar_t *x = X.data_ptr<scalar_t>(), *d = D.data_ptr<scalar_t>();
    const scalar_t *c0 = C0.data_ptr<scalar_t>(), *g = G.data_ptr<scalar_t>();
    scalar_t *z = Z.data_ptr<scalar_t>(), *rr = residual.data_ptr<scalar_t>();
    int64_t* st = steps.data_ptr<int64_t>();
    at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      OmpWork<scalar_t> work(m, k, p);
      for (int64_t i = begin; i < end; ++i) {
        st[i] = omp_sample<scalar_t>(c0 + i * m, g, m, k, z + i * m, work);
        rr[i] = relative_residual<scalar_t>(x + i * p, d, p, z + i * m, work, st[i]);
      }
    });
  });
  return {Z, steps, residual};
}
