// lasso_path: the lasso homotopy (LARS-lasso), one sample per task: the path of the batched torch
// version in solvers/homotopy.py without its per-step dispatch cost. For each sample, from the correlations
// c = x D^T and the Gram matrix G = D D^T, the path keeps the active set A (compact slots 0..k-1), its
// signs s, the coefficients z_A, M = inverse(G_AA) and the direction d = M s, and moves lambda down by gamma
// until the next event: an atom joins, an atom leaves, or lambda reaches alpha. A step costs O(k^2) for M
// (its upper triangle: bordering on a join, a rank-one downdate on a leave; d follows in O(k)) and
// O(k (m - k)) for the correlations of the inactive atoms: on the active ones c_A = lambda s_A holds by
// construction and is not tracked. In float64 whatever the data: float32 loses digits in proportion to the
// conditioning of G_AA.

#include "common.h"

namespace {

using T = double;

// The first index of the largest of h[0..n), and that value in best, where it is above best (else -1).
int64_t first_max(const T* h, int64_t n, T& best) {
  T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int r = 0; r < 8; ++r) part[r] = std::max(part[r], h[i + r]);
  T top = 0;
  for (; i < n; ++i) top = std::max(top, h[i]);
  for (int r = 0; r < 8; ++r) top = std::max(top, part[r]);
  if (!(top > best)) return -1;
  best = top;
  for (i = 0; h[i] != top; ++i) {
  }
  return i;
}

struct Path {
  int64_t m, kmax, k = 0;
  std::vector<T> c, a, h, M, s, z, d, b, g;
  std::vector<int64_t> idx, inactive, where;  // where: each atom's place in inactive (-1: active or left out)

  Path(int64_t m_, int64_t kmax_)
      : m(m_), kmax(kmax_), c(m_), a(m_), h(m_), M(kmax_ * kmax_), s(kmax_), z(kmax_), d(kmax_), b(kmax_),
        g(kmax_), idx(kmax_), inactive(m_), where(m_) {}

  void reset(const T* c0) {
    std::copy(c0, c0 + m, c.begin());
    inactive.resize(m);
    for (int64_t j = 0; j < m; ++j) inactive[j] = j, where[j] = j;
    k = 0;
  }

  // y = M x; M is symmetric and only its upper triangle (row p from column p on) is kept: every update
  // and product reads half of it
  void symv(const T* x, T* y) const {
    std::fill(y, y + k, T(0));
    for (int64_t p = 0; p < k; ++p) {
      const T* row = &M[p * kmax];
      y[p] += dot(row + p, x + p, k - p);
      for (int64_t q = p + 1; q < k; ++q) y[q] += row[q] * x[p];
    }
  }

  // d = M s, after the signs changed (LARS' sign flips)
  void direction() { symv(s.data(), d.data()); }

  // Bordering: b = M g (g the column of G_jA), sigma = G_jj - g.b; M <- [[M + b b^T / sigma, -b / sigma],
  // [-b^T / sigma, 1 / sigma]], and with b carrying -1 in the new slot, d <- [d, 0] + b (b.s - sign) / sigma.
  bool join(const T* G, int64_t j, T sign) {
    const T* gj = G + j * m;  // G is symmetric: row j holds column j
    const T gjj = gj[j];
    for (int64_t p = 0; p < k; ++p) g[p] = gj[idx[p]];
    symv(g.data(), b.data());
    const T sigma = gjj - dot(g.data(), b.data(), k), bs = dot(b.data(), s.data(), k);
    // the atom is (nearly) a combination of the active ones
    if (!(sigma > std::sqrt(std::numeric_limits<T>::epsilon()) * gjj)) return false;
    const T inv = T(1) / sigma;
    for (int64_t p = 0; p < k; ++p) {
      const T bp = b[p] * inv;
      T* row = &M[p * kmax];
      for (int64_t q = p; q < k; ++q) row[q] += bp * b[q];
      row[k] = -bp;
    }
    M[k * kmax + k] = inv;
    const T f = (bs - sign) * inv;
    for (int64_t p = 0; p < k; ++p) d[p] += f * b[p];
    d[k] = -f;
    idx[k] = j;
    s[k] = sign;
    z[k] = 0;
    exclude(j);
    ++k;
    return true;
  }

  // j leaves the list of inactive atoms: it joined, or it stays out of the path for good (an atom that the
  // active ones (nearly) span: as lars_path drops a degenerate regressor; the gap tells whether the code
  // reached the optimum all the same)
  void exclude(int64_t j) {
    const int64_t at = where[j], last = inactive.back();
    inactive[at] = last;
    where[last] = at;
    inactive.pop_back();
    where[j] = -1;
  }

  // M <- M - M_q M_q^T / M_qq and d <- d - M_q d_q / M_qq, then the last slot moves into slot q; the atom
  // leaves at the level lam, where its correlation is lam s_q.
  int64_t leave(int64_t q, T lam) {
    const T piv = M[q * kmax + q], fd = d[q] / piv;
    for (int64_t p = 0; p < k; ++p) b[p] = p < q ? M[p * kmax + q] : M[q * kmax + p];
    for (int64_t p = 0; p < k; ++p) {
      const T f = b[p] / piv;
      T* row = &M[p * kmax];
      for (int64_t r = p; r < k; ++r) row[r] -= f * b[r];
      d[p] -= fd * b[p];
    }
    const int64_t atom = idx[q], last = k - 1;
    c[atom] = lam * s[q];
    if (q != last) {  // row and column q take those of the last slot, in the upper triangle
      for (int64_t r = 0; r < q; ++r) M[r * kmax + q] = M[r * kmax + last];
      for (int64_t r = q + 1; r < last; ++r) M[q * kmax + r] = M[r * kmax + last];
      M[q * kmax + q] = M[last * kmax + last];
      idx[q] = idx[last];
      s[q] = s[last];
      z[q] = z[last];
      d[q] = d[last];
    }
    where[atom] = static_cast<int64_t>(inactive.size());
    inactive.push_back(atom);
    --k;
    return atom;
  }

  // whether the inactive atoms are few (dense codes): then the per-atom loops go over their list, else over
  // every atom in order (contiguous, vectorised)
  bool few() const { return 4 * static_cast<int64_t>(inactive.size()) < m; }

  // a = G_{.A} d on the inactive atoms: the active rows of G in turn while the inactive atoms are many,
  // a gathered dot product per inactive atom once they are few
  void correlations_step(const T* G, bool few) {
    const int64_t nf = static_cast<int64_t>(inactive.size());
    if (few) {
      for (int64_t f = 0; f < nf; ++f) a[inactive[f]] = dot(d.data(), G + inactive[f] * m, k, idx.data());
      return;
    }
    std::fill(a.begin(), a.end(), T(0));
    for (int64_t q = 0; q < k; ++q) {
      const T dq = d[q];
      const T* row = G + idx[q] * m;
      for (int64_t j = 0; j < m; ++j) a[j] += dq * row[j];
    }
  }
};

// LARS joins the inactive atom of largest correlation and takes it as the new level, as scikit-learn's
// lars_path does (after a sign flip that atom may have passed the level while it waited).
bool largest_inactive(const Path& P, bool positive, int64_t& j, T& lam) {
  T best = -1;
  for (const int64_t l : P.inactive) {
    const T v = positive ? P.c[l] : std::abs(P.c[l]);
    if (v > best || (v == best && l < j)) best = v, j = l;
  }
  if (best < 0) return false;
  lam = best;
  return true;
}

// Relative duality gap of the code z_A (as in objectives.relative_gap), from the Gram form: with the exact
// correlations q = c0 - z_A G_A, ||x - zD||^2 = xx - z.c0 - z.q. The path's own c is not used: it is
// only maintained on the inactive atoms, and carries the rounding of every step. q is scratch (m).
T gram_gap(const T* c0, const T* G, int64_t m, const Path& P, const T* z, T xx, T alpha, bool positive, T* q) {
  std::copy(c0, c0 + m, q);
  T zc0 = 0, l1 = 0;
  for (int64_t p = 0; p < P.k; ++p) {
    const T* row = G + P.idx[p] * m;
    for (int64_t j = 0; j < m; ++j) q[j] -= z[p] * row[j];
    zc0 += z[p] * c0[P.idx[p]];
    l1 += std::abs(z[p]);
  }
  T zq = 0, dual = 0;
  for (int64_t p = 0; p < P.k; ++p) zq += z[p] * q[P.idx[p]];
  for (int64_t j = 0; j < m; ++j) dual = std::max(dual, positive ? q[j] : std::abs(q[j]));
  T scale;
  return gram_form_gap(xx, zc0, zq, l1, dual, alpha, scale) / std::max(T(0.5) * xx, std::numeric_limits<T>::min());
}

// Returns the steps taken; status is 1 (arrived at alpha), 0 (out of steps) or -1 (LARS: the path broke).
// With lar, LARS as scikit-learn's lars_path(method="lar") runs it: active atoms never leave; a coefficient
// that crosses zero within a step flips its sign and the step's event adds no atom (the atom that would
// have joined waits one step); the path arrives after max_active steps.
int64_t follow(const T* c0, const T* G, int64_t m, int64_t kmax, T alpha, bool positive, int64_t max_steps,
               bool lar, int64_t max_active, Path& P, int8_t& status) {
  const T inf = std::numeric_limits<T>::infinity(), tiny = std::numeric_limits<T>::min();
  P.reset(c0);
  T lam = 0;
  int64_t first = 0;
  for (int64_t j = 0; j < m; ++j) {
    const T v = positive ? P.c[j] : std::abs(P.c[j]);
    if (v > lam) lam = v, first = j;
  }
  status = 1;
  if (lam <= alpha) return 0;
  P.join(G, first, P.c[first] >= 0 ? T(1) : T(-1));
  // the atom that just left, and the sign it had: it may not join on that side in the next step (its
  // correlation is at the level there), but may on the other one; 0: on neither (LARS, after a flip)
  int64_t banned = -1, step = 0;
  T banned_side = 0;
  status = 0;
  while (step < max_steps) {
    ++step;
    const int64_t k = P.k;
    const bool few = P.few();
    P.correlations_step(G, few);
    // the first atom to join maximises the inverse join time (1 - side a) / (lam - side c), side its sign
    T best = 0;
    int64_t jbest = -1;
    const auto rate = [&](int64_t j, T side) {
      return (1 - side * P.a[j]) / std::max(lam - side * P.c[j], tiny);
    };
    const auto consider = [&](int64_t j, T h) {
      if (h > best || (h == best && h > 0 && j < jbest)) best = h, jbest = j;
    };
    const auto either = [&](int64_t j) { return positive ? rate(j, 1) : std::max(rate(j, 1), rate(j, -1)); };
    if (few) {
      for (const int64_t j : P.inactive)
        if (j != banned) consider(j, either(j));
    } else {  // every atom at once (vectorised), the active ones at 0, then the first maximum
      T* h = P.h.data();
      for (int64_t j = 0; j < m; ++j) h[j] = P.where[j] >= 0 ? either(j) : T(0);
      if (banned >= 0) h[banned] = 0;
      jbest = first_max(h, m, best);
    }
    if (banned >= 0 && banned_side != 0 && !positive) consider(banned, rate(banned, -banned_side));
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
    if (few) {
      for (const int64_t j : P.inactive) P.c[j] -= gamma * P.a[j];
    } else {  // the active entries are left meaningless (see leave)
      for (int64_t j = 0; j < m; ++j) P.c[j] -= gamma * P.a[j];
    }
    lam -= gamma;
    if (flipped) P.direction();
    banned = -1;
    banned_side = 0;
    if (g_stop <= std::min(g_join, g_leave)) {
      status = 1;
      break;
    }
    if (lar && step >= max_active) {
      status = 1;
      break;
    }
    if (g_leave < g_join) {
      banned_side = P.s[qbest];
      banned = P.leave(qbest, lam);
    } else if (flipped) {
      banned = jbest;
    } else if (lar && !largest_inactive(P, positive, jbest, lam)) {
      status = -1;
      break;
    } else if (P.k == kmax || !P.join(G, jbest, positive || P.c[jbest] >= 0 ? T(1) : T(-1))) {
      if (lar) {
        status = -1;
        break;
      }
      P.exclude(jbest);  // (nearly) a combination of the active atoms
    }
  }
  return step;
}

}  // namespace

// C0 = X D^T (n, m), G = D D^T (m, m) and xx the squared norms of the rows of X (n,), float64 on the CPU. With
// lar, the LARS path of max_active steps (see follow). Otherwise gap comes back with the relative duality gap
// of each code, rounded to float32 first with round32 (what the caller returns for float32 data), and a path
// that arrives with the gap of its own (unrounded) code above tol > 0 has status 0.
std::vector<torch::Tensor> lasso_path(torch::Tensor C0, torch::Tensor G, torch::Tensor xx, double alpha,
                                      bool positive, int64_t max_steps, int64_t kmax, bool lar, int64_t max_active,
                                      double tol, bool round32) {
  TORCH_CHECK(C0.device().is_cpu() && G.device().is_cpu() && xx.device().is_cpu(),
              "lasso_path runs on CPU tensors");
  TORCH_CHECK(C0.scalar_type() == torch::kDouble && G.scalar_type() == torch::kDouble &&
                  xx.scalar_type() == torch::kDouble, "lasso_path runs in float64");
  C0 = C0.contiguous();
  G = G.contiguous();
  xx = xx.contiguous();
  const int64_t n = C0.size(0), m = C0.size(1);
  TORCH_CHECK(xx.numel() == n, "lasso_path needs the squared norm of every sample");
  auto Z = torch::zeros_like(C0);
  auto gap = torch::zeros({n}, C0.options());
  auto steps = torch::zeros({n}, C0.options().dtype(torch::kInt64));
  auto status = torch::zeros({n}, C0.options().dtype(torch::kInt8));
  const T* c0 = C0.data_ptr<T>();
  const T* g = G.data_ptr<T>();
  const T* x2 = xx.data_ptr<T>();
  T* zout = Z.data_ptr<T>();
  T* gout = gap.data_ptr<T>();
  int64_t* st = steps.data_ptr<int64_t>();
  int8_t* ok = status.data_ptr<int8_t>();
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    Path P(m, kmax);
    std::vector<T> q(m), zr(kmax);
    for (int64_t i = begin; i < end; ++i) {
      const T* ci = c0 + i * m;
      st[i] = follow(ci, g, m, kmax, T(alpha), positive, max_steps, lar, max_active, P, ok[i]);
      T* zi = zout + i * m;
      for (int64_t p = 0; p < P.k; ++p) zi[P.idx[p]] = P.z[p];
      if (lar) continue;
      if (round32)
        for (int64_t p = 0; p < P.k; ++p) zr[p] = static_cast<T>(static_cast<float>(P.z[p]));
      gout[i] = gram_gap(ci, g, m, P, round32 ? zr.data() : P.z.data(), x2[i], T(alpha), positive, q.data());
      // converged on the gap of the unrounded code, measured only where the rounded one is above tol
      if (ok[i] == 1 && tol > 0 && !(gout[i] <= tol) &&
          !(round32 && gram_gap(ci, g, m, P, P.z.data(), x2[i], T(alpha), positive, q.data()) <= tol))
        ok[i] = 0;
    }
  });
  return {Z, steps, status, gap};
}
