// The exact lasso solution on cd.cpp's working set: a primal active-set method (the feature-sign search of
// Lee, Battle, Raina & Ng 2007) warm-started from the codes the sweeps reached. On a support S with signs
// sigma, the solution y of G_SS y = c0_S - alpha sigma minimises the energy on S's orthant; the step from z
// toward y stops where an atom first reaches zero (the energy falls all along it), and that atom leaves S.
// Once z = y, the working set's violators of |q_j| <= alpha join S with the signs of their q_j (where all of a
// batch leave at once without z moving, one at a time: a lone violator's solution keeps its sign), and a
// violator within the span of S, which then spans the features, moves z along the direction that keeps the
// fit until an atom of S reaches zero and leaves for it. The energy falls at every step that moves z, so no
// support repeats. The Cholesky factor L of G_SS follows S: a row appended per atom joining, Givens rotations
// per atom leaving, O(|S|^2) each; so does u = L^-1 (c0_S - alpha sigma), so that a step's solve is one back
// substitution.

#pragma once

#include "common.h"

template <typename T>
class ActiveSet {
 public:
  static constexpr int64_t kCompactMax = int64_t(1) << 22;  // entries of G_ww (32 MB in float64) at most

  explicit ActiveSet(int64_t m) : in_(m, 0), S_(m), order_(m), sign_(m), y_(m), u_(m) {}

  // z on w[0..ws) is updated in place, its non-zeros there the warm start, z zero off w; q is scratch (the
  // correlations c0 - z G off the support, where violators are looked for: the caller recomputes them). Returns
  // true where z is the exact solution on w (no violator left) within max_steps steps. Otherwise (steps spent,
  // or rounding stops the progress) z is the last iterate: its energy is no higher than the start's, except for
  // the atoms of a linearly dependent start support, set to zero.
  bool solve(const T* c0, const T* G, int64_t m, T alpha, bool positive, const int64_t* w, int64_t ws, T* z,
             T* q, int64_t max_steps) {
    G_ = G, c0_ = c0, alpha_ = alpha, m_ = m, w_ = w, ld_ = ws, k_ = 0;
    Gw_.clear();
    gathered_ = 0;
    std::fill(in_.begin(), in_.begin() + ws, 0);
    // the start support, largest codes first: where the atoms of z's support are linearly dependent, the
    // smallest leave it (at zero)
    int64_t nnz = 0;
    for (int64_t p = 0; p < ws; ++p)
      if (z[w[p]] != 0) S_[nnz++] = p;
    std::copy(S_.begin(), S_.begin() + nnz, order_.begin());
    std::sort(order_.begin(), order_.begin() + nnz,
              [&](int64_t a, int64_t b) { return std::abs(z[w[a]]) > std::abs(z[w[b]]); });
    for (int64_t v = 0; v < nnz; ++v) {
      const int64_t p = order_[v];
      if (!append(p, z[w[p]] > 0 ? T(1) : T(-1))) z[w[p]] = 0;
    }
    bool single = false, moved = true;  // one violator joins at a time once a batch left without moving z
    for (int64_t step = 0; step < max_steps; ++step) {
      solve_support();
      // the atoms that joined at zero and whose solution has the wrong sign leave first (z unchanged)
      bool dropped = false;
      int64_t waiting = 0;
      for (int64_t r = k_ - 1; r >= 0; --r) {
        if (z[w[S_[r]]] != 0) continue;
        if (sign_[r] * y_[r] > 0) {
          ++waiting;
        } else {
          remove(r);
          dropped = true;
        }
      }
      if (dropped) {
        if (waiting == 0 && !moved) {
          if (single) return false;  // rounding: the one violator's own solution has the wrong sign
          single = true;
        }
        continue;
      }
      // the step toward y, up to the first atom reaching zero
      T t = 1;
      int64_t leave = -1;
      for (int64_t r = 0; r < k_; ++r) {
        if (sign_[r] * y_[r] > 0) continue;
        const T zr = z[w[S_[r]]];
        const T tr = zr / (zr - y_[r]);
        if (tr < t) t = tr, leave = r;
      }
      for (int64_t r = 0; r < k_; ++r) {
        T& zr = z[w[S_[r]]];
        zr = leave < 0 ? y_[r] : zr + t * (y_[r] - zr);
      }
      moved = true;
      if (leave >= 0) {
        z[w[S_[leave]]] = 0;
        remove(leave);
        continue;
      }
      // q off S (on S, q = alpha sign at z = y): c0 less the rows of S's atoms, eight at a time (summed in y_,
      // scratch). At first gathered from G at the atoms off S (listed in order_); once that gathering has cost
      // as much as G on w (G_ww, up to kCompactMax entries), G_ww is gathered for the rest of the call and its
      // rows run contiguous, in vector registers, over all of w (dense supports take hundreds of steps).
      const bool compact = !Gw_.empty() || (gathered_ >= ws * ws && ws * ws <= kCompactMax);
      if (compact && Gw_.empty()) {
        Gw_.resize(ws * ws);
        for (int64_t a = 0; a < ws; ++a)
          for (int64_t b = 0; b < ws; ++b) Gw_[a * ws + b] = G[w[a] * m + w[b]];
      }
      int64_t n = ws;
      if (!compact) {
        n = 0;
        for (int64_t p = 0; p < ws; ++p)
          if (!in_[p]) order_[n++] = w[p];
        gathered_ += k_ * n;
      }
      const int64_t* off = order_.data();
      T* __restrict acc = y_.data();
      for (int64_t f = 0; f < n; ++f) acc[f] = c0[compact ? w[f] : off[f]];
      const auto subtract_rows = [&](auto row_of, auto col) {
        int64_t r = 0;
        for (; r + 8 <= k_; r += 8) {
          const T* __restrict g[8];
          T zr[8];
          for (int i = 0; i < 8; ++i) g[i] = row_of(S_[r + i]), zr[i] = z[w[S_[r + i]]];
          for (int64_t f = 0; f < n; ++f) {
            const int64_t j = col(f);
            acc[f] -= (zr[0] * g[0][j] + zr[1] * g[1][j] + zr[2] * g[2][j] + zr[3] * g[3][j]) +
                      (zr[4] * g[4][j] + zr[5] * g[5][j] + zr[6] * g[6][j] + zr[7] * g[7][j]);
          }
        }
        for (; r < k_; ++r) {
          const T* __restrict g0 = row_of(S_[r]);
          const T z0 = z[w[S_[r]]];
          for (int64_t f = 0; f < n; ++f) acc[f] -= z0 * g0[col(f)];
        }
      };
      if (compact) {
        subtract_rows([&](int64_t p) { return Gw_.data() + p * ws; }, [](int64_t f) { return f; });
        for (int64_t p = 0; p < ws; ++p)
          if (!in_[p]) q[w[p]] = acc[p];
      } else {
        subtract_rows([&](int64_t p) { return G + w[p] * m; }, [&](int64_t f) { return off[f]; });
        for (int64_t f = 0; f < n; ++f) q[off[f]] = acc[f];
      }
      // the violators of |q_j| <= alpha join, largest first, with the signs of their q_j
      const auto violation = [&](int64_t p) { return positive ? q[w[p]] : std::abs(q[w[p]]); };
      int64_t nv = 0;
      for (int64_t p = 0; p < ws; ++p)
        if (!in_[p] && violation(p) > alpha) order_[nv++] = p;
      if (nv == 0) return true;
      const auto larger = [&](int64_t a, int64_t b) { return violation(a) > violation(b); };
      if (single) {
        std::nth_element(order_.begin(), order_.begin(), order_.begin() + nv, larger);
        nv = 1;
      } else {
        std::sort(order_.begin(), order_.begin() + nv, larger);
      }
      const auto sign = [&](int64_t p) { return q[w[p]] > 0 ? T(1) : T(-1); };
      int64_t joined = 0;
      for (int64_t v = 0; v < nv; ++v) joined += append(order_[v], sign(order_[v]));
      moved = joined == 0;
      if (joined == 0 && !ray(order_[0], sign(order_[0]), violation(order_[0]) - alpha, z)) return false;
    }
    return false;
  }

 private:
  // L^-1 G_Sp for position p of w into the factor's row k_; returns the pivot G_pp - |L^-1 G_Sp|^2
  T project(int64_t p) {
    // the factor's rows have w's length, and grow with S (which stays within the rank of G) rather than with w
    if (L_.size() < static_cast<size_t>((k_ + 1) * ld_)) L_.resize((k_ + 1) * ld_);
    const T* row = G_ + w_[p] * m_;
    T* Lk = L_.data() + k_ * ld_;
    T d = row[w_[p]];
    for (int64_t r = 0; r < k_; ++r) {
      const T* Lr = L_.data() + r * ld_;
      Lk[r] = (row[w_[S_[r]]] - dot(Lr, Lk, r)) / Lr[r];
    }
    return d - dot(Lk, Lk, k_);
  }

  // appends position p of w (sign s) to S and its row to the Cholesky factor; false (S unchanged) where the
  // atom lies within the span of S's up to rounding
  bool append(int64_t p, T s) {
    const T d = project(p);
    if (!(d > std::sqrt(std::numeric_limits<T>::epsilon()) * G_[w_[p] * m_ + w_[p]])) return false;
    const T* Lk = L_.data() + k_ * ld_;
    L_[k_ * ld_ + k_] = std::sqrt(d);
    u_[k_] = (c0_[w_[p]] - alpha_ * s - dot(Lk, u_.data(), k_)) / Lk[k_];
    S_[k_] = p, sign_[k_] = s, in_[p] = 1;
    ++k_;
    return true;
  }

  // where the violator p (sign s, |q_p| - alpha = excess) lies in the span of S, which spans the features: the
  // step z_p = s tau, z_S -= s tau G_SS^-1 G_Sp leaves the fit all but unchanged (by the pivot d) and lowers the
  // energy by excess tau - d tau^2 / 2, up to tau = excess / d or the first atom of S reaching zero, which
  // leaves S for p. False where p could not join S (z moved all the same, its energy lower).
  bool ray(int64_t p, T s, T excess, T* z) {
    const T d = std::max(project(p), T(0));
    const T* L = L_.data();
    std::copy(L + k_ * ld_, L + k_ * ld_ + k_, y_.begin());  // y = G_SS^-1 G_Sp
    back_substitute();
    T tau = d > 0 ? excess / d : std::numeric_limits<T>::infinity();
    int64_t leave = -1;
    for (int64_t r = 0; r < k_; ++r) {
      const T zr = z[w_[S_[r]]], rate = -s * y_[r];
      if (zr * rate < 0 && -zr / rate < tau) tau = -zr / rate, leave = r;
    }
    if (!std::isfinite(tau)) return false;
    for (int64_t r = 0; r < k_; ++r) z[w_[S_[r]]] -= s * tau * y_[r];
    z[w_[p]] = s * tau;
    if (leave < 0) return false;
    z[w_[S_[leave]]] = 0;
    remove(leave);
    return append(p, s);
  }

  // removes S's entry r: its row leaves the factor, and rotations of the columns r, r + 1, ... bring the rows
  // below back to lower-triangular (L L^T unchanged)
  void remove(int64_t r) {
    in_[S_[r]] = 0;
    T* L = L_.data();
    for (int64_t i = r; i + 1 < k_; ++i) {
      std::copy(L + (i + 1) * ld_, L + (i + 1) * ld_ + i + 2, L + i * ld_);
      S_[i] = S_[i + 1], sign_[i] = sign_[i + 1];
    }
    --k_;
    // u = L^-1 b still solves the rows left (b less its entry r) with the old columns; the rotations of the
    // columns act on u as on the factor's rows, and its last entry drops
    for (int64_t i = r; i < k_; ++i) {
      const T a = L[i * ld_ + i], b = L[i * ld_ + i + 1], h = std::hypot(a, b), c = a / h, s = b / h;
      for (int64_t row = i; row < k_; ++row) {
        const T u = L[row * ld_ + i], v = L[row * ld_ + i + 1];
        L[row * ld_ + i] = c * u + s * v;
        L[row * ld_ + i + 1] = c * v - s * u;
      }
      const T u = u_[i], v = u_[i + 1];
      u_[i] = c * u + s * v, u_[i + 1] = c * v - s * u;
    }
  }

  // y = G_SS^-1 (c0_S - alpha sign_S) = L^-T u, u = L^-1 (c0_S - alpha sign_S) kept by append and remove
  void solve_support() {
    std::copy(u_.begin(), u_.begin() + k_, y_.begin());
    back_substitute();
  }

  // y <- L^-T y, by columns of L^T (rows of L: contiguous)
  void back_substitute() {
    const T* L = L_.data();
    T* __restrict y = y_.data();
    for (int64_t r = k_ - 1; r >= 0; --r) {
      const T* __restrict Lr = L + r * ld_;
      const T yr = y[r] /= Lr[r];
      for (int64_t t = 0; t < r; ++t) y[t] -= yr * Lr[t];
    }
  }

  const T* G_ = nullptr;
  const T* c0_ = nullptr;
  T alpha_ = 0;
  const int64_t* w_ = nullptr;
  int64_t m_ = 0, ld_ = 0, k_ = 0, gathered_ = 0;  // gathered_: entries of G gathered by violator searches
  std::vector<int8_t> in_;  // per position of w: in S
  std::vector<int64_t> S_, order_;  // positions in w
  std::vector<T> sign_, y_, u_, L_, Gw_;  // Gw_: G on w (ws x ws), once gathering from G has cost as much
};
