// fista_working_sets: the L1 path of fista() (sparsecode/solvers/working_set.py), one sample per task, in the
// Gram form on G = DD^T and c0 = xD^T: the same rounds without the dispatch of a torch op per small step.
// Each round computes the correlations q = c0 - zG exactly and the full duality gap (gram_gap, the only
// stopping rule), polishes z (below), screens the units that the gap proves zero (gap-safe:
// s|q_j| + ||d_j|| sqrt(2 gap) < alpha), grows the working set W by the max(nnz, 8) worst violators of
// |q_j| <= alpha, then runs FISTA with adaptive restart on the problem restricted to W with the step 1/L_W,
// L_W the Collatz-Wielandt bound of lambda_max(G_WW) that restricted_lipschitz computes, until W's own gap
// is below 0.3 of the full one (or tol), or after 2 checks in the first round and 3 later. Where a round
// changed neither W nor z, the next one goes on with FISTA's momentum (dense codes: W stops growing and the
// rounds are one FISTA run). Unlike the torch path no sample leaves for plain FISTA on the whole dictionary:
// the restricted gradient costs nnz(u) |W| per iteration (u G_WW summed over the iterate's non-zeros, the
// extrapolated point's correlations combined from the last two iterates'), never more than a full Gram step.
// Polishing: at each round and at each check where the signs changed since the last polish (the signs of a
// kept polish count as tried, so the next round does not polish the same codes again), the exact lasso
// solution restricted to the support S of the iterate, by the active-set method of cd_active_set.h started
// from the iterate (on S only: a unit leaves S where its solution would flip sign, none joins from outside,
// so the units still come from FISTA's steps), kept where it lowers the energy. On dense codes in coherent
// atoms (condition numbers of G_SS near 1e5) FISTA alone needs about 10^4 iterations for 1e-6 (its signs are
// all right only after 3000-10000), and a solve with the iterate's signs fixed fails while a few are wrong;
// this polishing drops the wrong units and FISTA's next steps bring the missing ones: 100-200 iterations.
// Each polish has ns/4 + 16 steps of the active set (ns = |S|): on dense codes the polishes are nearly all the
// time (16x16 learned atoms, 230 of 256 units: 97%, FISTA's own steps a few per cent), a few dozen units
// leave in the first ones, and on near-singular supports (centred atoms, rank n_features - 1) the active set
// can go on for hundreds of O(ns^2) steps that trade one unit for another, each lowering the energy by little
// (with 2 ns + 16 steps, 40 ms per polish there, 10 times the factorisation); FISTA's next checks resume.

#include "cd_active_set.h"
#include "common.h"

namespace {

template <typename T>
struct FistaWork {
  std::vector<T> y_last, q, qc, zc, norms, u, un, y, qu, qn, qy, gw, bw, v, tv;
  std::vector<int64_t> w, sup, cand;
  std::vector<int8_t> screened, in_w, tried;
  T t = 1;  // FISTA's momentum state at the end of the last round, with y_last
  bool carry = false;
  ActiveSet<T> support;
  explicit FistaWork(int64_t m)
      : y_last(m), q(m), qc(m), zc(m), norms(m), u(m), un(m), y(m), qu(m), qn(m), qy(m), bw(m), v(m), tv(m), w(m),
        sup(m), cand(m), screened(m), in_w(m), tried(m), support(m) {}
};

// q = b - u g on k units (g row-major, leading dimension ld), summed over the non-zeros of u
template <typename T>
void block_correlations(const T* g, int64_t ld, const T* b, int64_t k, const T* u, T* q) {
  std::copy(b, b + k, q);
  for (int64_t r = 0; r < k; ++r) {
    if (u[r] == 0) continue;
    const T* row = g + r * ld;
    const T ur = u[r];
    for (int64_t p = 0; p < k; ++p) q[p] -= ur * row[p];
  }
}

// The energy less 0.5 xx, 0.5 (xx - u.b - u.q) + alpha ||u||_1 - 0.5 xx, from q = b - u g
template <typename T>
T energy(const T* b, const T* u, const T* q, T alpha, int64_t k) {
  T e = 0;
  for (int64_t p = 0; p < k; ++p)
    if (u[p] != 0) e += u[p] * (T(-0.5) * (b[p] + q[p])) + alpha * std::abs(u[p]);
  return e;
}

// Whether the signs of u on w[0..k) changed since the last polish (W.tried), taking the new ones
template <typename T>
bool signs_changed(const T* u, const int64_t* w, int64_t k, FistaWork<T>& W) {
  bool changed = false;
  for (int64_t p = 0; p < k; ++p) {
    const int8_t sg = (u[p] > 0) - (u[p] < 0);
    int8_t& old = W.tried[w ? w[p] : p];
    changed = changed || sg != old;
    old = sg;
  }
  return changed;
}

// Polishing on k units (Gram block g with leading dimension ld, b = xD^T on them, the units' indices w, null for
// 0..k) at u, q = b - u g, where u's signs changed since the last polish (W.tried): the exact solution of the
// lasso restricted to u's support, by the active set from u within ns/4 + 16 steps; it replaces u and q where its
// energy is lower (true then), and W.tried takes its signs (the active set drops units and may flip some).
template <typename T>
bool polish(const T* g, int64_t ld, const T* b, T alpha, bool positive, int64_t k, const int64_t* w, T* u, T* q,
            FistaWork<T>& W) {
  if (!signs_changed(u, w, k, W)) return false;
  int64_t ns = 0;
  for (int64_t p = 0; p < k; ++p)
    if (u[p] != 0) W.sup[ns++] = p;
  if (ns == 0) return false;
  T *zc = W.zc.data(), *qc = W.qc.data();
  std::copy(u, u + k, zc);
  W.support.solve(b, g, ld, alpha, positive, W.sup.data(), ns, zc, qc, ns / 4 + 16);
  block_correlations(g, ld, b, k, zc, qc);
  for (int64_t r = 0; r < ns; ++r)
    if (!std::isfinite(zc[W.sup[r]])) return false;
  if (!(energy(b, zc, qc, alpha, k) < energy(b, u, q, alpha, k))) return false;
  std::copy(zc, zc + k, u);
  std::copy(qc, qc + k, q);
  signs_changed(u, w, k, W);
  return true;
}

// Upper bound of lambda_max of the k x k block g (restricted_lipschitz): min over 6 power iterations of
// max_j (|g| v)_j / v_j, from v = 1 (Gershgorin), raised by 1e-3 against rounding
template <typename T>
T restricted_bound(const T* g, int64_t k, FistaWork<T>& W) {
  T* v = W.v.data();
  T* t = W.tv.data();
  std::fill(v, v + k, T(1));
  T best = std::numeric_limits<T>::infinity();
  for (int it = 0; it < 6; ++it) {
    std::fill(t, t + k, T(0));
    for (int64_t r = 0; r < k; ++r)
      for (int64_t p = 0; p < k; ++p) t[p] += std::abs(g[r * k + p]) * v[r];
    T ratio = 0, top = 0;
    for (int64_t p = 0; p < k; ++p) ratio = std::max(ratio, t[p] / v[p]), top = std::max(top, t[p]);
    best = std::min(best, ratio);
    if (!(top > 0)) break;
    for (int64_t p = 0; p < k; ++p) v[p] = std::max(t[p] / top, T(1e-3));
  }
  return best * T(1 + 1e-3);
}

// FISTA on the problem restricted to W.w[0..k) from z's values there, for at most cap iterations, until the
// restricted gap is below target (checked every check_every iterations); z updated on W; returns iterations
template <typename T>
int64_t restricted_fista(const T* c0, const T* G, int64_t m, T xx, T alpha, bool positive, T L, int64_t k,
                         int64_t cap, int64_t check_every, bool momentum, bool restart, T target, T* z,
                         FistaWork<T>& W) {
  const int64_t* w = W.w.data();
  if (W.gw.size() < static_cast<size_t>(k * k)) W.gw.resize(k * k);
  T* g = W.gw.data();
  T* bw = W.bw.data();
  for (int64_t p = 0; p < k; ++p) {
    const T* row = G + w[p] * m;
    for (int64_t r = 0; r < k; ++r) g[p * k + r] = row[w[r]];
    bw[p] = c0[w[p]];
  }
  const T step = 1 / std::max(std::min(restricted_bound(g, k, W), L), std::numeric_limits<T>::min());
  // the iterate u, the next one un and the extrapolated point y, each with its correlations b - (.) g: the
  // correlations of y combine those of the last two iterates (one product per step, over un's non-zeros)
  T *u = W.u.data(), *un = W.un.data(), *y = W.y.data(), *qu = W.qu.data(), *qn = W.qn.data(), *qy = W.qy.data();
  // FISTA goes on from the last round's extrapolated point where the round changed neither W nor z
  T t = W.carry ? W.t : T(1), s;
  for (int64_t p = 0; p < k; ++p) u[p] = z[w[p]], y[p] = W.carry ? W.y_last[w[p]] : u[p];
  block_correlations(g, k, bw, k, u, qu);
  block_correlations(g, k, bw, k, y, qy);
  int64_t it = 0;
  while (it < cap) {
    ++it;
    for (int64_t p = 0; p < k; ++p) un[p] = soft(y[p] + step * qy[p], step * alpha, positive);
    block_correlations(g, k, bw, k, un, qn);
    if (momentum) {
      T t_next = T(0.5) * (1 + std::sqrt(1 + 4 * t * t));
      if (restart) {  // O'Donoghue & Candes: the step and the momentum disagree
        T agree = 0;
        for (int64_t p = 0; p < k; ++p) agree += (y[p] - un[p]) * (un[p] - u[p]);
        if (agree > 0) t = t_next = 1;
      }
      const T beta = (t - 1) / t_next;
      for (int64_t p = 0; p < k; ++p) {
        y[p] = un[p] + beta * (un[p] - u[p]);
        qy[p] = qn[p] + beta * (qn[p] - qu[p]);
      }
      t = t_next;
    } else {
      std::copy(un, un + k, y);
      std::copy(qn, qn + k, qy);
    }
    std::swap(u, un);
    std::swap(qu, qn);
    if (it % check_every) continue;
    if (polish(g, k, bw, alpha, positive, k, w, u, qu, W)) {
      std::copy(u, u + k, y);  // the momentum restarts from the polished codes
      std::copy(qu, qu + k, qy);
      t = 1;
    }
    if (gram_gap(bw, u, qu, static_cast<const int64_t*>(nullptr), k, xx, alpha, positive, s) <= target) break;
  }
  for (int64_t p = 0; p < k; ++p) z[w[p]] = u[p], W.y_last[w[p]] = y[p];
  W.t = t;
  return it;
}

template <typename T>
int64_t fista_sample(const T* c0, const T* G, int64_t m, T xx, T alpha, bool positive, T L, int64_t max_iter, T tol,
                     int64_t check_every, bool momentum, bool restart, T* z, FistaWork<T>& W, int8_t& converged) {
  T* q = W.q.data();
  const T scale = std::max(T(0.5) * xx, std::numeric_limits<T>::min());
  const T slack = 16 * std::numeric_limits<T>::epsilon() * xx;  // raises 2 gap against rounding
  std::fill(W.screened.begin(), W.screened.end(), 0);
  std::fill(W.tried.begin(), W.tried.end(), 0);  // a non-zero warm start is polished first
  for (int64_t j = 0; j < m; ++j) W.in_w[j] = z[j] != 0;
  int64_t used = 0, budget = max_iter;
  converged = 0;
  T s;
  while (true) {
    block_correlations(G, m, c0, m, z, q);
    bool moved = polish(G, m, c0, alpha, positive, m, static_cast<const int64_t*>(nullptr), z, q, W);
    const T gap = gram_gap(c0, z, q, static_cast<const int64_t*>(nullptr), m, xx, alpha, positive, s);
    if (gap <= tol * scale) {
      converged = 1;
      break;
    }
    if (used >= budget) break;
    // screening, then the working set grows by the worst violators
    const T radius = std::sqrt(2 * gap + slack);
    int64_t nnz = 0, nc = 0, k = 0;
    for (int64_t j = 0; j < m; ++j) {
      const T corr = positive ? q[j] : std::abs(q[j]);
      if (!W.screened[j] && s * corr + W.norms[j] * radius < alpha) W.screened[j] = 1;
      if (W.screened[j]) {
        moved = moved || W.in_w[j] || z[j] != 0;
        z[j] = 0, W.in_w[j] = 0;
        continue;
      }
      W.in_w[j] = W.in_w[j] || z[j] != 0;
      nnz += z[j] != 0;
      if (!W.in_w[j] && corr > alpha) W.cand[nc++] = j;
    }
    const int64_t grow = std::min(std::max(nnz, int64_t(8)), nc);
    const auto worse = [&](int64_t a, int64_t b) {
      return (positive ? q[a] : std::abs(q[a])) > (positive ? q[b] : std::abs(q[b]));
    };
    if (grow < nc) std::nth_element(W.cand.begin(), W.cand.begin() + grow, W.cand.begin() + nc, worse);
    for (int64_t c = 0; c < grow; ++c) W.in_w[W.cand[c]] = 1;
    W.carry = momentum && used > 0 && grow == 0 && !moved;
    for (int64_t j = 0; j < m; ++j)
      if (W.in_w[j]) W.w[k++] = j;
    if (k == 0) {  // every unit screened, z = 0: measure it and stop there
      budget = used;
      continue;
    }
    const int64_t cap = std::min(budget - used, (used ? 3 : 2) * check_every);
    used += restricted_fista(c0, G, m, xx, alpha, positive, L, k, cap, check_every, momentum, restart,
                             std::max(T(0.3) * gap, tol * scale), z, W);
  }
  return used;
}

}  // namespace

// C0 = X D^T (n, m), G = D D^T (m, m), xx = row norms of X squared (n,), Z (n, m) the warm start, updated in
// place; all contiguous CPU tensors of one floating dtype. L caps the restricted bounds (inf when unknown).
// Returns (iterations, converged) per sample.
std::vector<torch::Tensor> fista_working_sets(torch::Tensor C0, torch::Tensor G, torch::Tensor xx, torch::Tensor Z,
                                              double alpha, bool positive, double L, int64_t max_iter, double tol,
                                              int64_t check_every, bool momentum, bool restart) {
  TORCH_CHECK(C0.device().is_cpu() && Z.is_contiguous() && C0.is_contiguous() && G.is_contiguous(),
              "fista_working_sets runs on contiguous CPU tensors");
  TORCH_CHECK(alpha > 0 && tol > 0 && check_every > 0, "fista_working_sets needs alpha > 0, tol > 0, check_every > 0");
  const int64_t n = C0.size(0), m = C0.size(1);
  auto iters = torch::zeros({n}, C0.options().dtype(torch::kInt64));
  auto converged = torch::zeros({n}, C0.options().dtype(torch::kInt8));
  AT_DISPATCH_FLOATING_TYPES(C0.scalar_type(), "fista_working_sets", [&] {
    const scalar_t* c0 = C0.data_ptr<scalar_t>();
    const scalar_t* g = G.data_ptr<scalar_t>();
    const scalar_t* x2 = xx.data_ptr<scalar_t>();
    scalar_t* z = Z.data_ptr<scalar_t>();
    int64_t* its = iters.data_ptr<int64_t>();
    int8_t* ok = converged.data_ptr<int8_t>();
    at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      FistaWork<scalar_t> work(m);
      for (int64_t j = 0; j < m; ++j) work.norms[j] = std::sqrt(std::max(g[j * m + j], scalar_t(0)));
      for (int64_t i = begin; i < end; ++i)
        its[i] = fista_sample<scalar_t>(c0 + i * m, g, m, x2[i], scalar_t(alpha), positive, scalar_t(L), max_iter,
                                        scalar_t(tol), check_every, momentum, restart, z + i * m, work, ok[i]);
    });
  });
  return {iters, converged};
}
