// lasso_path: the lasso homotopy (LARS-lasso), one sample per task: the path of the batched torch
// version in solvers/homotopy.py without its per-step dispatch cost. For each sample, from the correlations
// c = x D^T and the Gram matrix G = D D^T, the path keeps the active set A (compact slots 0..k-1), its
// signs s, the coefficients z_A and M = inverse(G_AA), and moves lambda down by gamma along d = M s until
// the next event: an atom joins, an atom leaves, or lambda reaches alpha.

#include "common.h"

namespace {

template <typename T>
struct Path {
  int64_t m, kmax, k = 0;
  std::vector<T> c, a, M, s, z, d, b;
  std::vector<int64_t> idx;
  std::vector<char> active;

  Path(int64_t m_, int64_t kmax_)
      : m(m_), kmax(kmax_), c(m_), a(m_), M(kmax_ * kmax_), s(kmax_), z(kmax_), d(kmax_), b(kmax_),
        idx(kmax_), active(m_) {}

  // Bordering: b = M g, sigma = G_jj - g.b; M <- [[M + b b^T / sigma, -b / sigma], [-b^T / sigma, 1 / sigma]].
  bool join(const T* G, int64_t j, T sign) {
    const T gjj = G[j * m + j];
    T sigma = gjj;
    for (int64_t p = 0; p < k; ++p) {
      T acc = 0;
      for (int64_t q = 0; q < k; ++q) acc += M[p * kmax + q] * G[idx[q] * m + j];
      b[p] = acc;
      sigma -= G[idx[p] * m + j] * acc;
    }
    // the atom is (nearly) a combination of the active ones
    if (!(sigma > std::sqrt(std::numeric_limits<T>::epsilon()) * gjj)) return false;
    const T inv = T(1) / sigma;
    for (int64_t p = 0; p < k; ++p) {
      const T bp = b[p] * inv;
      for (int64_t q = 0; q < k; ++q) M[p * kmax + q] += bp * b[q];
      M[p * kmax + k] = -bp;
      M[k * kmax + p] = -bp;
    }
    M[k * kmax + k] = inv;
    idx[k] = j;
    s[k] = sign;
    z[k] = 0;
    active[j] = 1;
    ++k;
    return true;
  }

  // M <- M - M_q M_q^T / M_qq, then the last slot moves into slot q.
  int64_t leave(int64_t q) {
    const T piv = M[q * kmax + q];
    for (int64_t p = 0; p < k; ++p) b[p] = M[p * kmax + q];
    for (int64_t p = 0; p < k; ++p) {
      const T f = b[p] / piv;
      for (int64_t r = 0; r < k; ++r) M[p * kmax + r] -= f * b[r];
    }
    const int64_t atom = idx[q], last = k - 1;
    if (q != last) {
      for (int64_t p = 0; p < k; ++p) M[q * kmax + p] = M[last * kmax + p];
      for (int64_t p = 0; p < k; ++p) M[p * kmax + q] = M[p * kmax + last];
      M[q * kmax + q] = M[last * kmax + last];
      idx[q] = idx[last];
      s[q] = s[last];
      z[q] = z[last];
    }
    active[atom] = 0;
    --k;
    return atom;
  }
};

// LARS joins the inactive atom of largest correlation and takes it as the new level, as scikit-learn's
// lars_path does (after a sign flip that atom may have passed the level while it waited).
template <typename T>
bool largest_inactive(const Path<T>& P, bool positive, int64_t& j, T& lam) {
  T best = -1;
  for (int64_t l = 0; l < P.m; ++l) {
    const T v = positive ? P.c[l] : std::abs(P.c[l]);
    if (!P.active[l] && v > best) best = v, j = l;
  }
  if (best < 0) return false;
  lam = best;
  return true;
}

// Returns the steps taken; status is 1 (arrived at alpha), 0 (out of steps) or -1 (the path broke).
// With lar, LARS as scikit-learn's lars_path(method="lar") runs it: active atoms never leave; a coefficient
// that crosses zero within a step flips its sign and the step's event adds no atom (the atom that would
// have joined waits one step); the path arrives after max_active steps.
template <typename T>
int64_t follow(const T* c0, const T* G, int64_t m, int64_t kmax, T alpha, bool positive, int64_t max_steps,
               bool lar, int64_t max_active, Path<T>& P, T* zout, int8_t& status) {
  const T inf = std::numeric_limits<T>::infinity(), tiny = std::numeric_limits<T>::min();
  std::copy(c0, c0 + m, P.c.begin());
  std::fill(P.active.begin(), P.active.end(), 0);
  P.k = 0;
  T lam = 0;
  int64_t first = 0;
  for (int64_t j = 0; j < m; ++j) {
    const T v = positive ? P.c[j] : std::abs(P.c[j]);
    if (v > lam) lam = v, first = j;
  }
  status = 1;
  if (lam <= alpha) return 0;
  P.join(G, first, P.c[first] >= 0 ? T(1) : T(-1));
  int64_t banned = -1, step = 0;
  status = 0;
  while (step < max_steps) {
    ++step;
    const int64_t k = P.k;
    for (int64_t p = 0; p < k; ++p) {
      T acc = 0;
      for (int64_t q = 0; q < k; ++q) acc += P.M[p * kmax + q] * P.s[q];
      P.d[p] = acc;
    }
    std::fill(P.a.begin(), P.a.end(), T(0));
    for (int64_t q = 0; q < k; ++q) {
      const T dq = P.d[q];
      const T* row = G + P.idx[q] * m;
      for (int64_t j = 0; j < m; ++j) P.a[j] += dq * row[j];
    }
    // the first atom to join maximises the inverse join time (1 -+ a) / (lam -+ c)
    T best = 0;
    int64_t jbest = -1;
    for (int64_t j = 0; j < m; ++j) {
      if (P.active[j] || j == banned) continue;
      T h = (1 - P.a[j]) / std::max(lam - P.c[j], tiny);
      if (!positive) h = std::max(h, (1 + P.a[j]) / std::max(lam + P.c[j], tiny));
      if (h > best) best = h, jbest = j;
    }
    const T g_join = jbest >= 0 ? T(1) / best : inf;
    T g_leave = inf;
    int64_t qbest = -1;
    for (int64_t q = 0; q < k; ++q) {
      if (P.z[q] * P.d[q] < 0) {
        const T r = -P.z[q] / P.d[q];
        if (r < g_leave) g_leave = r, qbest = q;
      }
    }
    const T g_stop = lam - alpha;
    bool flipped = false;
    if (lar) {
      if (g_leave < std::min(g_join, g_stop)) {
        for (int64_t q = 0; q < k; ++q)
          if (P.z[q] * P.d[q] < 0 && -P.z[q] / P.d[q] == g_leave) P.s[q] = -P.s[q];
        flipped = true;
      }
      g_leave = inf;
    }
    const T gamma = std::min(std::min(g_join, g_leave), g_stop);
    for (int64_t q = 0; q < k; ++q) P.z[q] += gamma * P.d[q];
    for (int64_t j = 0; j < m; ++j) P.c[j] -= gamma * P.a[j];
    lam -= gamma;
    banned = -1;
    if (g_stop <= std::min(g_join, g_leave)) {
      status = 1;
      break;
    }
    if (lar && step >= max_active) {
      status = 1;
      break;
    }
    if (g_leave < g_join) {
      banned = P.leave(qbest);  // an atom that just left waits one step
    } else if (flipped) {
      banned = jbest;
    } else if (lar && !largest_inactive(P, positive, jbest, lam)) {
      status = -1;
      break;
    } else if (P.k == kmax || !P.join(G, jbest, positive || P.c[jbest] >= 0 ? T(1) : T(-1))) {
      status = -1;
      break;
    }
  }
  for (int64_t q = 0; q < P.k; ++q) zout[P.idx[q]] = P.z[q];
  return step;
}

}  // namespace

// C0 = X D^T (n, m) and G = D D^T (m, m), contiguous, same floating dtype, on the CPU.
// With lar, the LARS path of max_active steps (see follow).
std::vector<torch::Tensor> lasso_path(torch::Tensor C0, torch::Tensor G, double alpha, bool positive,
                                      int64_t max_steps, int64_t kmax, bool lar, int64_t max_active) {
  TORCH_CHECK(C0.device().is_cpu() && G.device().is_cpu(), "lasso_path runs on CPU tensors");
  C0 = C0.contiguous();
  G = G.contiguous();
  const int64_t n = C0.size(0), m = C0.size(1);
  auto Z = torch::zeros_like(C0);
  auto steps = torch::zeros({n}, C0.options().dtype(torch::kInt64));
  auto status = torch::zeros({n}, C0.options().dtype(torch::kInt8));
  AT_DISPATCH_FLOATING_TYPES(C0.scalar_type(), "lasso_path", [&] {
    const scalar_t* c0 = C0.data_ptr<scalar_t>();
    const scalar_t* g = G.data_ptr<scalar_t>();
    scalar_t* z = Z.data_ptr<scalar_t>();
    int64_t* st = steps.data_ptr<int64_t>();
    int8_t* ok = status.data_ptr<int8_t>();
    at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      Path<scalar_t> P(m, kmax);
      for (int64_t i = begin; i < end; ++i)
        st[i] = follow<scalar_t>(c0 + i * m, g, m, kmax, scalar_t(alpha), positive, max_steps, lar, max_active, P,
                                  z + i * m, ok[i]);
    });
  });
  return {Z, steps, status};
}
