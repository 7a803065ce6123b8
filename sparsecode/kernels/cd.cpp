// cyclic_cd: cyclic coordinate descent on the Gram matrix (the algorithm of scikit-learn's
// enet_coordinate_descent_gram), one sample per task. With q = c0 - z G the residual's correlations,
// coordinate j moves to prox(q_j + G_jj z_j) / G_jj and q follows by a rank-one update. The duality gap
// comes from the Gram form, ||x - zD||^2 = xx - z.c0 - z.q, as in objectives.relative_gap.
// With tol <= 0 every sweep visits every coordinate (max_sweeps of them). With tol > 0, working sets
// (glmnet, Celer: Massias, Gramfort & Salmon 2018) and gap-safe screening (Fercoq, Gramfort & Salmon 2015):
// each outer step recomputes q exactly, stops below tol, discards the atoms the gap proves zero
// (s|q_j| + ||d_j|| sqrt(2 gap) < alpha, s the dual scaling), then sweeps only the working set W (the
// non-zeros and the atoms nearest to violating their constraint: twice the non-zeros, never shrinking,
// doubling while the gap falls less than tenfold) with q kept on W, until W's own gap is below 0.3 of the
// full one. Within W: after the first sweep, and every 4 sweeps after where a sign changed, the exact
// solution on W by an active-set method started from the sweeps' codes (cd_active_set.h), and every 5
// sweeps an Anderson extrapolation (anderson), each kept where it lowers the energy. Plain sweeps need
// thousands on dense codes in coherent atoms (supports with condition numbers of 1e6); the active set
// ends there in one call per working set. Every sweep over W counts toward max_sweeps.

#include "cd_active_set.h"
#include "common.h"

namespace {

template <typename T>
struct CdWork {
  static constexpr int64_t K = 5;  // Anderson: extrapolation from the last K + 1 iterates
  std::vector<T> q, prio, zkeep, qkeep, hist;
  std::vector<int64_t> w, order;
  std::vector<int8_t> screened, sign;
  ActiveSet<T> support;
  explicit CdWork(int64_t m)
      : q(m), prio(m), zkeep(m), qkeep(m), hist((K + 1) * m), w(m), order(m), screened(m), sign(m), support(m) {}
};

// The energy of z supported in w[0..k) less 0.5 xx, from q on w: 0.5 (xx - z.c0 - z.q) + alpha ||z||_1 - 0.5 xx.
template <typename T>
T energy_on(const T* c0, const T* z, const T* q, const int64_t* w, int64_t k, T alpha) {
  T e = 0;
  for (int64_t p = 0; p < k; ++p) e += z[w[p]] * (T(-0.5) * (c0[w[p]] + q[w[p]])) + alpha * std::abs(z[w[p]]);
  return e;
}

// Anderson acceleration of coordinate descent (Bertrand & Massias 2021) on z restricted to w[0..k): with
// the last K + 1 iterates in hist (rows of k), the extrapolation sum_i c_i z_(i+1), where c solves
// U^T U c = 1, sum c = 1 for the differences U of the iterates. Kept (z and q on w) where it lowers the
// energy 0.5 (xx - z.c0 - z.q) + alpha ||z||_1 (xx left out) and keeps the sign constraint.
template <typename T>
void anderson(const T* c0, const T* G, int64_t m, T alpha, bool positive, const int64_t* w, int64_t k,
              T* z, T* q, CdWork<T>& W) {
  constexpr int64_t K = CdWork<T>::K;
  T A[K][K + 1];
  const T* h = W.hist.data();
  T trace = 0;
  for (int64_t a = 0; a < K; ++a) {
    for (int64_t b = 0; b <= a; ++b) {
      T acc = 0;
      for (int64_t p = 0; p < k; ++p)
        acc += (h[(a + 1) * k + p] - h[a * k + p]) * (h[(b + 1) * k + p] - h[b * k + p]);
      A[a][b] = A[b][a] = acc;
    }
    trace += A[a][a];
    A[a][K] = 1;
  }
  if (!(trace > 0)) return;
  for (int64_t a = 0; a < K; ++a) A[a][a] += T(1e-10) * trace;
  for (int64_t a = 0; a < K; ++a) {  // Gaussian elimination: A is symmetric positive definite
    for (int64_t b = a + 1; b < K; ++b) {
      const T f = A[b][a] / A[a][a];
      for (int64_t c = a; c <= K; ++c) A[b][c] -= f * A[a][c];
    }
  }
  T c[K], total = 0;
  for (int64_t a = K - 1; a >= 0; --a) {
    T acc = A[a][K];
    for (int64_t b = a + 1; b < K; ++b) acc -= A[a][b] * c[b];
    c[a] = acc / A[a][a];
    total += c[a];
  }
  if (!std::isfinite(total) || total == 0) return;
  T* ze = W.zkeep.data();
  T* qe = W.qkeep.data();
  for (int64_t p = 0; p < k; ++p) {
    T v = 0;
    for (int64_t a = 0; a < K; ++a) v += c[a] / total * h[(a + 1) * k + p];
    if (positive && v < 0) return;
    ze[p] = v;
  }
  const T energy_old = energy_on(c0, z, q, w, k, alpha);
  for (int64_t p = 0; p < k; ++p) qe[p] = c0[w[p]];
  for (int64_t r = 0; r < k; ++r) {
    if (ze[r] == 0) continue;
    const T* row = G + w[r] * m;
    for (int64_t p = 0; p < k; ++p) qe[p] -= ze[r] * row[w[p]];
  }
  for (int64_t p = 0; p < k; ++p) std::swap(z[w[p]], ze[p]), std::swap(q[w[p]], qe[p]);
  if (energy_on(c0, z, q, w, k, alpha) < energy_old) return;
  for (int64_t p = 0; p < k; ++p) std::swap(z[w[p]], ze[p]), std::swap(q[w[p]], qe[p]);  // back
}

template <typename T>
int64_t cd_sample(const T* c0, const T* G, int64_t m, T alpha, bool positive, int64_t max_sweeps, T tol, T xx,
                  T* z, CdWork<T>& W, int8_t& converged) {
  T* q = W.q.data();
  // q = c0 - z G on the columns cols[0..nc) (all when cols is null), z supported in idx[0..k) (all when null)
  const auto exact_q = [&](const int64_t* cols, int64_t nc, const int64_t* idx, int64_t k) {
    for (int64_t c = 0; c < nc; ++c) q[cols ? cols[c] : c] = c0[cols ? cols[c] : c];
    for (int64_t p = 0; p < k; ++p) {
      const int64_t j = idx ? idx[p] : p;
      if (z[j] == 0) continue;
      const T* row = G + j * m;
      if (cols) {
        for (int64_t c = 0; c < nc; ++c) q[cols[c]] -= z[j] * row[cols[c]];
      } else {
        for (int64_t l = 0; l < m; ++l) q[l] -= z[j] * row[l];
      }
    }
  };
  // one sweep over the coordinates idx[0..k), q updated on cols[0..nc) (all of q when cols is null)
  const auto sweep_over = [&](const int64_t* idx, int64_t k, const int64_t* cols, int64_t nc) {
    for (int64_t p = 0; p < k; ++p) {
      const int64_t j = idx ? idx[p] : p;
      const T gjj = G[j * m + j];
      if (!(gjj > 0)) continue;
      const T v = soft(q[j] + gjj * z[j], alpha, positive) / gjj;
      const T dz = v - z[j];
      if (dz == 0) continue;
      z[j] = v;
      const T* row = G + j * m;
      if (cols) {
        for (int64_t c = 0; c < nc; ++c) q[cols[c]] -= dz * row[cols[c]];
      } else {
        for (int64_t l = 0; l < m; ++l) q[l] -= dz * row[l];
      }
    }
  };
  const T scale = std::max(T(0.5) * xx, std::numeric_limits<T>::min());
  exact_q(nullptr, m, nullptr, m);
  converged = 0;
  int64_t sweep = 0;
  T s;
  if (!(tol > 0)) {
    for (; sweep < max_sweeps; ++sweep) sweep_over(nullptr, m, nullptr, m);
    return sweep;
  }
  std::fill(W.screened.begin(), W.screened.end(), 0);
  int64_t ws = 0;
  T last_gap = std::numeric_limits<T>::infinity();
  while (true) {
    const T gap = gram_gap(c0, z, q, static_cast<const int64_t*>(nullptr), m, xx, alpha, positive, s);
    if (gap <= tol * scale) {
      converged = 1;
      break;
    }
    if (sweep >= max_sweeps) break;
    // gap-safe screening: the dual optimum lies within sqrt(2 gap)/alpha of the dual point s (x - zD)/alpha
    const T radius = std::sqrt(2 * gap);
    int64_t nnz = 0, nfree = 0;
    for (int64_t j = 0; j < m; ++j) {
      const T gjj = G[j * m + j];
      if (!W.screened[j]) {
        const T corr = positive ? s * q[j] : s * std::abs(q[j]);
        if (corr + std::sqrt(std::max(gjj, T(0))) * radius < alpha) {
          W.screened[j] = 1;
          if (z[j] != 0) {
            const T* row = G + j * m;
            for (int64_t l = 0; l < m; ++l) q[l] += z[j] * row[l];
            z[j] = 0;
          }
        }
      }
      if (W.screened[j] || !(gjj > 0)) continue;
      // working-set priority: non-zeros first, then by distance to the constraint |d_j.theta| <= 1
      W.prio[j] = z[j] != 0 ? -std::numeric_limits<T>::infinity()
                            : (alpha - (positive ? s * q[j] : s * std::abs(q[j]))) / std::sqrt(gjj);
      nnz += z[j] != 0;
      W.order[nfree++] = j;
    }
    if (nfree == 0) {  // every atom proven zero: z = 0 is the optimum
      converged = 1;
      break;
    }
    // W never shrinks, and doubles while the gap falls slowly (coherent atoms: few non-zeros per W)
    ws = std::min(nfree, std::max({2 * nnz, last_gap < 10 * gap ? 2 * ws : ws, int64_t(16)}));
    last_gap = gap;
    std::nth_element(W.order.begin(), W.order.begin() + (ws - 1), W.order.begin() + nfree,
                     [&](int64_t a, int64_t b) { return W.prio[a] < W.prio[b]; });
    std::copy(W.order.begin(), W.order.begin() + ws, W.w.begin());
    std::sort(W.w.begin(), W.w.begin() + ws);
    const int64_t* w = W.w.data();
    const T inner_tol = T(0.3) * gap;
    // whether a sign on W changed since the last call, taking the new ones
    const auto signs_changed = [&]() {
      bool changed = false;
      for (int64_t p = 0; p < ws; ++p) {
        const int8_t sg = (z[w[p]] > 0) - (z[w[p]] < 0);
        changed = changed || sg != W.sign[p];
        W.sign[p] = sg;
      }
      return changed;
    };
    const auto record = [&](int64_t slot) {
      for (int64_t p = 0; p < ws; ++p) W.hist[slot * ws + p] = z[w[p]];
    };
    record(0);
    for (int64_t inner = 1; sweep < max_sweeps; ++inner) {
      sweep_over(w, ws, w, ws);
      ++sweep;
      record(inner % W.K == 0 ? W.K : inner % W.K);
      if (inner % W.K == 0) {
        anderson(c0, G, m, alpha, positive, w, ws, z, q, W);
        record(0);
      }
      if (gram_gap(c0, z, q, w, ws, xx, alpha, positive, s) <= inner_tol) break;
      if ((inner - 1) % 4) continue;
      // after the first sweep, then every 4 where the sweeps changed a sign: the active-set solution on W from
      // z, kept where it lowers the energy (it does unless the support it starts from is rank-deficient)
      const bool changed = signs_changed();
      if (inner > 1 && !changed) continue;
      for (int64_t p = 0; p < ws; ++p) W.zkeep[p] = z[w[p]], W.qkeep[p] = q[w[p]];
      const T before = energy_on(c0, z, q, w, ws, alpha);
      W.support.solve(c0, G, m, alpha, positive, w, ws, z, q, 2 * ws + 16);
      exact_q(w, ws, w, ws);
      if (energy_on(c0, z, q, w, ws, alpha) <= before) {
        if (gram_gap(c0, z, q, w, ws, xx, alpha, positive, s) <= inner_tol) break;
      } else {
        for (int64_t p = 0; p < ws; ++p) z[w[p]] = W.zkeep[p], q[w[p]] = W.qkeep[p];
      }
      signs_changed();
    }
    exact_q(nullptr, m, nullptr, m);
  }
  return sweep;
}

}  // namespace

// C0 = X D^T (n, m), G = D D^T (m, m), xx = row norms of X squared (n,), Z (n, m) the warm start, updated
// in place; all contiguous CPU tensors of one floating dtype. Returns (sweeps, converged) per sample.
std::vector<torch::Tensor> cyclic_cd(torch::Tensor C0, torch::Tensor G, torch::Tensor xx, torch::Tensor Z,
                                     double alpha, bool positive, int64_t max_sweeps, double tol) {
  TORCH_CHECK(C0.device().is_cpu() && Z.is_contiguous() && C0.is_contiguous() && G.is_contiguous(),
              "cyclic_cd runs on contiguous CPU tensors");
  const int64_t n = C0.size(0), m = C0.size(1);
  auto sweeps = torch::zeros({n}, C0.options().dtype(torch::kInt64));
  auto converged = torch::zeros({n}, C0.options().dtype(torch::kInt8));
  AT_DISPATCH_FLOATING_TYPES(C0.scalar_type(), "cyclic_cd", [&] {
    const scalar_t* c0 = C0.data_ptr<scalar_t>();
    const scalar_t* g = G.data_ptr<scalar_t>();
    const scalar_t* x2 = xx.data_ptr<scalar_t>();
    scalar_t* z = Z.data_ptr<scalar_t>();
    int64_t* sw = sweeps.data_ptr<int64_t>();
    int8_t* ok = converged.data_ptr<int8_t>();
    at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      CdWork<scalar_t> work(m);
      for (int64_t i = begin; i < end; ++i)
        sw[i] = cd_sample<scalar_t>(c0 + i * m, g, m, scalar_t(alpha), positive, max_sweeps, scalar_t(tol), x2[i],
                                    z + i * m, work, ok[i]);
    });
  });
  return {sweeps, converged};
}
