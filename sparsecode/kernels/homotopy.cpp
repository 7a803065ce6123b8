// lasso_path: the lasso homotopy (LARS-lasso), one sample per task: the path of the batched torch version in
// solvers/homotopy.py without its per-step dispatch cost. For each sample, from the correlations c = x D^T and
// the Gram matrix G = D D^T, the path keeps the active set A (compact slots 0..k-1), its signs s, the
// coefficients z_A, M = inverse(G_AA) and the direction d = M s, and moves lambda down by gamma until the next
// event: an atom joins, an atom leaves, or lambda reaches alpha. A step costs O(k^2) for M (its upper triangle:
// bordering on a join, a rank-one downdate on a leave; d follows in O(k)) and O(k (m - k)) for the correlations
// of the inactive atoms: on the active ones c_A = lambda s_A holds by construction and is not tracked. Those k
// (m - k) entries of G are kept in a compact copy, Gi, a row per active atom and a column per inactive one,
// updated in O(m) per event: the product streams through it in order, where reading the rows of G (2 MB in
// float64 for 512 atoms, a core's L2 cache) took 1.4x as long. In float64 whatever the data (float32 loses
// digits in proportion to the conditioning of G_AA), except Gi for float32 data where its double copy would
// outgrow the L2 cache: a float copy halves what the product reads (16x16 patches, 1024 atoms, 230 active:
// 1.2-1.3x faster); a path whose own code then misses tol (its rounding can reorder the events of all but
// parallel atoms) is followed again with the double copy, which a thread keeps once that happens to more than
// one of its paths in 16.

#include "common.h"

#include <numeric>
#include <optional>
#include <type_traits>

namespace {

using T = double;

// The largest of f(0), ..., f(n - 1) and 0, in eight partial maxima (vectorised): one running maximum is a
// chain of dependent instructions, which took most of the time of the short paths of sparse codes.
template <typename F>
T max_of(int64_t n, F f) {
  T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int r = 0; r < 8; ++r) part[r] = std::max(part[r], f(i + r));
  T top = 0;
  for (; i < n; ++i) top = std::max(top, f(i));
  for (int r = 0; r < 8; ++r) top = std::max(top, part[r]);
  return top;
}

// The first index of the largest of h[0..n), and that value in best, where it is above best (else -1).
int64_t first_max(const T* h, int64_t n, T& best) {
  const T top = max_of(n, [h](int64_t i) { return h[i]; });
  if (!(top > best)) return -1;
  best = top;
  int64_t i = 0;
  while (h[i] != top) ++i;
  return i;
}

// S: the element type of Gi, the compact copy of G that the correlations of the inactive atoms stream through
// at every step (the path's one O(k (m - k)) product): float where lasso_path takes the float copy (it halves
// the bytes read, at the data's own rounding; M, the direction and the codes stay in float64), else double.
template <typename S>
struct Path {
  int64_t m, kmax, k = 0;
  // c, a and h are kept per inactive atom, in the order of the list inactive (contiguous, vectorised loops), and
  // so are the rows of Gi: row p holds G_{idx[p], inactive}, stride m (in cache where G is not: the step's
  // product a = d G_{A, inactive} reads only these k (m - k) entries of G, in order)
  std::vector<T> c, a, h, M, s, z, d, b, g;
  std::vector<S> Gi;
  std::vector<int64_t> idx, inactive, where;  // where: each atom's place in inactive (-1: active or left out)

  Path(int64_t m_, int64_t kmax_)
      : m(m_), kmax(kmax_), c(m_), a(m_), h(m_), M(kmax_ * kmax_), s(kmax_), z(kmax_), d(kmax_), b(kmax_),
        g(kmax_), Gi(kmax_ * m_), idx(kmax_), inactive(m_), where(m_) {}

  int64_t free_count() const { return static_cast<int64_t>(inactive.size()); }

  void reset(const T* c0) {
    std::copy(c0, c0 + m, c.begin());
    inactive.resize(m);
    std::iota(inactive.begin(), inactive.end(), int64_t(0));
    std::iota(where.begin(), where.end(), int64_t(0));
    k = 0;
  }

  // y = M x; M is symmetric and only its upper triangle (row p from column p on) is kept: every update
  // and product reads half of it
  void symv(const T* x, T* y) const {
    std::fill(y, y + k, T(0));
    for (int64_t p = 0; p < k; ++p) {  // one pass over row p: its dot with x and its part of the column
      const T* __restrict row = &M[p * kmax];
      T* __restrict yy = y;
      const T xp = x[p];
      T part[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sum = row[p] * xp;
      int64_t q = p + 1;
      for (; q + 8 <= k; q += 8)
        for (int r = 0; r < 8; ++r) part[r] += row[q + r] * x[q + r], yy[q + r] += row[q + r] * xp;
      for (; q < k; ++q) sum += row[q] * x[q], yy[q] += row[q] * xp;
      for (int r = 0; r < 8; ++r) sum += part[r];
      y[p] += sum;
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
    S* row = &Gi[k * m];
    const int64_t nf = free_count();
    for (int64_t f = 0; f < nf; ++f) row[f] = static_cast<S>(gj[inactive[f]]);
    ++k;
    return true;
  }

  // j leaves the list of inactive atoms: it joined, or it stays out of the path for good (an atom that the
  // active ones (nearly) span: as lars_path drops a degenerate regressor; the gap tells whether the code
  // reached the optimum all the same). The last of the list takes its place.
  void exclude(int64_t j) {
    const int64_t at = where[j], end = free_count() - 1, last = inactive[end];
    inactive[at] = last;
    where[last] = at;
    c[at] = c[end];
    for (int64_t p = 0; p < k; ++p) Gi[p * m + at] = Gi[p * m + end];
    inactive.pop_back();
    where[j] = -1;
  }

  // M <- M - M_q M_q^T / M_qq and d <- d - M_q d_q / M_qq, then the last slot moves into slot q; the atom
  // leaves at the level lam, where its correlation is lam s_q, to the end of the list of inactive atoms.
  int64_t leave(const T* G, int64_t q, T lam) {
    const T piv = M[q * kmax + q], fd = d[q] / piv;
    for (int64_t p = 0; p < k; ++p) b[p] = p < q ? M[p * kmax + q] : M[q * kmax + p];
    for (int64_t p = 0; p < k; ++p) {
      const T f = b[p] / piv;
      T* row = &M[p * kmax];
      for (int64_t r = p; r < k; ++r) row[r] -= f * b[r];
      d[p] -= fd * b[p];
    }
    const int64_t atom = idx[q], last = k - 1, at = free_count();
    c[at] = lam * s[q];
    if (q != last) {  // row and column q take those of the last slot, in the upper triangle
      for (int64_t r = 0; r < q; ++r) M[r * kmax + q] = M[r * kmax + last];
      for (int64_t r = q + 1; r < last; ++r) M[q * kmax + r] = M[r * kmax + last];
      M[q * kmax + q] = M[last * kmax + last];
      std::copy(&Gi[last * m], &Gi[last * m] + at, &Gi[q * m]);
      idx[q] = idx[last];
      s[q] = s[last];
      z[q] = z[last];
      d[q] = d[last];
    }
    --k;
    const T* ga = G + atom * m;
    for (int64_t p = 0; p < k; ++p) Gi[p * m + at] = static_cast<S>(ga[idx[p]]);
    where[atom] = at;
    inactive.push_back(atom);
    return atom;
  }

  // a = d G_{A, inactive}: eight rows of Gi at a time (a is loaded and stored once per eight)
  void correlations_step() {
    const int64_t nf = free_count();
    T* __restrict out = a.data();
    std::fill(out, out + nf, T(0));
    int64_t p = 0;
    for (; p + 8 <= k; p += 8) {
      const S* __restrict r0 = &Gi[p * m];
      const S *__restrict r1 = r0 + m, *__restrict r2 = r1 + m, *__restrict r3 = r2 + m;
      const S *__restrict r4 = r3 + m, *__restrict r5 = r4 + m, *__restrict r6 = r5 + m, *__restrict r7 = r6 + m;
      const T d0 = d[p], d1 = d[p + 1], d2 = d[p + 2], d3 = d[p + 3];
      const T d4 = d[p + 4], d5 = d[p + 5], d6 = d[p + 6], d7 = d[p + 7];
      for (int64_t f = 0; f < nf; ++f)
        out[f] += (d0 * r0[f] + d1 * r1[f] + d2 * r2[f] + d3 * r3[f]) +
                  (d4 * r4[f] + d5 * r5[f] + d6 * r6[f] + d7 * r7[f]);
    }
    for (; p < k; ++p) {
      const S* __restrict r0 = &Gi[p * m];
      const T d0 = d[p];
      for (int64_t f = 0; f < nf; ++f) out[f] += d0 * r0[f];
    }
  }
};

// LARS joins the inactive atom of largest correlation and takes it as the new level, as scikit-learn's
// lars_path does (after a sign flip that atom may have passed the level while it waited).
template <typename S>
bool largest_inactive(const Path<S>& P, bool positive, int64_t& j, T& lam) {
  T best = -1;
  for (int64_t f = 0; f < P.free_count(); ++f) {
    const T v = positive ? P.c[f] : std::abs(P.c[f]);
    const int64_t l = P.inactive[f];
    if (v > best || (v == best && l < j)) best = v, j = l;
  }
  if (best < 0) return false;
  lam = best;
  return true;
}

// Relative duality gap of the code z_A (as in objectives.relative_gap), from the Gram form: with the exact
// correlations q = c0 - z_A G_A, ||x - zD||^2 = xx - z.c0 - z.q. The path's own c is not used: it is
// only maintained on the inactive atoms, and carries the rounding of every step. q is scratch (m).
template <typename S>
T gram_gap(const T* c0, const T* G, int64_t m, const Path<S>& P, const T* z, T xx, T alpha, bool positive, T* q) {
  std::copy(c0, c0 + m, q);
  T zc0 = 0, l1 = 0;
  for (int64_t p = 0; p < P.k; ++p) {
    const T* row = G + P.idx[p] * m;
    for (int64_t j = 0; j < m; ++j) q[j] -= z[p] * row[j];
    zc0 += z[p] * c0[P.idx[p]];
    l1 += std::abs(z[p]);
  }
  T zq = 0;
  for (int64_t p = 0; p < P.k; ++p) zq += z[p] * q[P.idx[p]];
  const T dual = positive ? max_of(m, [q](int64_t j) { return q[j]; })
                          : max_of(m, [q](int64_t j) { return std::abs(q[j]); });
  T scale;
  return gram_form_gap(xx, zc0, zq, l1, dual, alpha, scale) / std::max(T(0.5) * xx, std::numeric_limits<T>::min());
}

// Returns the steps taken; status is 1 (arrived at alpha), 0 (out of steps) or -1 (LARS: the path broke).
// With lar, LARS as scikit-learn's lars_path(method="lar") runs it: active atoms never leave; a coefficient
// that crosses zero within a step flips its sign and the step's event adds no atom (the atom that would
// have joined waits one step); the path arrives after max_active steps.
template <typename S>
int64_t follow(const T* c0, const T* G, int64_t m, int64_t kmax, T alpha, bool positive, int64_t max_steps,
               bool lar, int64_t max_active, Path<S>& P, int8_t& status) {
  const T inf = std::numeric_limits<T>::infinity(), tiny = std::numeric_limits<T>::min();
  P.reset(c0);
  T lam = 0;
  for (int64_t j = 0; j < m; ++j) P.h[j] = positive ? P.c[j] : std::abs(P.c[j]);
  const int64_t first = first_max(P.h.data(), m, lam);
  status = 1;
  if (first < 0 || lam <= alpha) return 0;
  P.join(G, first, P.c[first] >= 0 ? T(1) : T(-1));
  // the atom that just left, and the sign it had: it may not join on that side in the next step (its
  // correlation is at the level there), but may on the other one; 0: on neither (LARS, after a flip)
  int64_t banned = -1, step = 0;
  T banned_side = 0;
  status = 0;
  while (step < max_steps) {
    ++step;
    const int64_t k = P.k, nf = P.free_count();
    P.correlations_step();
    // the first atom to join maximises the inverse join time (1 - side a) / (lam - side c), side its sign; by
    // its place f in the list of inactive atoms, and among equal times the atom of lowest index
    T best = 0;
    int64_t jbest = -1;
    const auto rate = [&](int64_t f, T side) {
      return (1 - side * P.a[f]) / std::max(lam - side * P.c[f], tiny);
    };
    const auto consider = [&](int64_t f, T h) {
      if (h > best || (h == best && h > 0 && P.inactive[f] < P.inactive[jbest])) best = h, jbest = f;
    };
    const auto either = [&](int64_t f) { return positive ? rate(f, 1) : std::max(rate(f, 1), rate(f, -1)); };
    {  // every inactive atom at once (vectorised), then the first maximum and its ties
      T* h = P.h.data();
      for (int64_t f = 0; f < nf; ++f) h[f] = either(f);
      if (banned >= 0) h[P.where[banned]] = 0;
      jbest = first_max(h, nf, best);
      int64_t ties = 0;  // (counted first: a vectorised pass, where ties are rare)
      for (int64_t f = jbest + 1; jbest >= 0 && f < nf; ++f) ties += h[f] == best;
      for (int64_t f = jbest + 1; ties > 0 && f < nf; ++f)
        if (h[f] == best && P.inactive[f] < P.inactive[jbest]) jbest = f;
    }
    if (banned >= 0 && banned_side != 0 && !positive) {
      const int64_t f = P.where[banned];
      consider(f, rate(f, -banned_side));
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
    for (int64_t f = 0; f < nf; ++f) P.c[f] -= gamma * P.a[f];
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
      banned = P.leave(G, qbest, lam);
    } else if (flipped) {
      banned = jbest >= 0 ? P.inactive[jbest] : -1;
    } else {
      int64_t atom = P.inactive[jbest];
      if (lar && !largest_inactive(P, positive, atom, lam)) {
        status = -1;
        break;
      }
      if (P.k == kmax || !P.join(G, atom, positive || P.c[P.where[atom]] >= 0 ? T(1) : T(-1))) {
        if (lar) {
          status = -1;
          break;
        }
        P.exclude(atom);  // (nearly) a combination of the active atoms
      }
    }
  }
  return step;
}

}  // namespace

// C0 = X D^T (n, m), G = D D^T (m, m) and the samples X (n, n_features), float64 on the CPU. With lar, the LARS
// path of max_active steps (see follow). Otherwise gap comes back with the relative duality gap of each code,
// and a path that arrives with the gap of its own (unrounded) code above tol > 0 has status 0. With round32
// (float32 data) the codes and their gaps come back in float32, each gap that of the code rounded to float32.
std::vector<torch::Tensor> lasso_path(torch::Tensor C0, torch::Tensor G, torch::Tensor X, double alpha,
                                      bool positive, int64_t max_steps, int64_t kmax, bool lar, int64_t max_active,
                                      double tol, bool round32) {
  TORCH_CHECK(C0.device().is_cpu() && G.device().is_cpu() && X.device().is_cpu(),
              "lasso_path runs on CPU tensors");
  TORCH_CHECK(C0.scalar_type() == torch::kDouble && G.scalar_type() == torch::kDouble &&
                  X.scalar_type() == torch::kDouble, "lasso_path runs in float64");
  C0 = C0.contiguous();
  G = G.contiguous();
  X = X.contiguous();
  const int64_t n = C0.size(0), m = C0.size(1), nf = X.size(1);
  TORCH_CHECK(X.size(0) == n, "lasso_path needs one sample per row of C0");
  const auto out = C0.options().dtype(round32 ? torch::kFloat : torch::kDouble);
  auto Z = torch::empty({n, m}, out);  // every row is written
  auto gap = torch::zeros({n}, out);
  auto steps = torch::zeros({n}, C0.options().dtype(torch::kInt64));
  auto status = torch::zeros({n}, C0.options().dtype(torch::kInt8));
  const T* c0 = C0.data_ptr<T>();
  const T* g = G.data_ptr<T>();
  const T* x = X.data_ptr<T>();
  int64_t* st = steps.data_ptr<int64_t>();
  int8_t* ok = status.data_ptr<int8_t>();
  float *z32 = round32 ? Z.data_ptr<float>() : nullptr, *g32 = round32 ? gap.data_ptr<float>() : nullptr;
  T *z64 = round32 ? nullptr : Z.data_ptr<T>(), *g64 = round32 ? nullptr : gap.data_ptr<T>();
  // sample i's code and gap, in the output's dtype
  const auto store = [m](auto* zout, auto* gout, int64_t i, const auto& P, T gi) {
    using O = std::remove_pointer_t<decltype(zout)>;
    O* zi = zout + i * m;
    std::fill(zi, zi + m, O(0));
    for (int64_t p = 0; p < P.k; ++p) zi[P.idx[p]] = static_cast<O>(P.z[p]);
    gout[i] = static_cast<O>(gi);
  };
  // the float copy of Gi where the double one would not fit in a core's L2 cache with room to spare (1 MB: 4x
  // overcomplete 16x16 patches); where it fits, the float copy gains nothing and its rounding costs paths
  const bool float_copy = round32 && !lar && kmax * m * static_cast<int64_t>(sizeof(T)) > (int64_t(1) << 20);
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    std::vector<T> q(m), zr(kmax);
    // sample i's path on P; false where it arrived but its own (unrounded) code is above tol
    const auto solve = [&](auto& P, int64_t i) {
      const T* ci = c0 + i * m;
      st[i] = follow(ci, g, m, kmax, T(alpha), positive, max_steps, lar, max_active, P, ok[i]);
      T gi = 0;
      bool arrived = true;
      if (!lar) {
        if (round32)
          for (int64_t p = 0; p < P.k; ++p) zr[p] = static_cast<T>(static_cast<float>(P.z[p]));
        const T xx = dot(x + i * nf, x + i * nf, nf);
        gi = gram_gap(ci, g, m, P, round32 ? zr.data() : P.z.data(), xx, T(alpha), positive, q.data());
        // converged on the gap of the unrounded code, measured only where the rounded one is above tol
        arrived = !(ok[i] == 1 && tol > 0 && !(gi <= tol) &&
                    !(round32 && gram_gap(ci, g, m, P, P.z.data(), xx, T(alpha), positive, q.data()) <= tol));
        if (!arrived) ok[i] = 0;
      }
      if (round32)
        store(z32, g32, i, P, gi);
      else
        store(z64, g64, i, P, gi);
      return arrived;
    };
    if (!float_copy) {
      Path<double> P(m, kmax);
      for (int64_t i = begin; i < end; ++i) solve(P, i);
      return;
    }
    // the float copy, the double one where its rounding missed an event (all but parallel atoms), and only the
    // double one while such paths are more than one in 16 of this task's (strongly coherent atoms, 16x16, 4x,
    // 30% non-zeros: following most paths twice took them from 0.8x to 1.5x SPAMS' time)
    Path<float> P(m, kmax);
    std::optional<Path<double>> exact;
    int64_t again = 0;
    for (int64_t i = begin; i < end; ++i) {
      if (16 * again <= i - begin) {
        if (solve(P, i)) continue;
        ++again;
      }
      if (!exact) exact.emplace(m, kmax);
      solve(*exact, i);
    }
  });
  return {Z, steps, status, gap};
}
