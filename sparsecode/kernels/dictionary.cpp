// bcd_sweep: one block-coordinate sweep over the atoms (rows of D), in place, as update_dictionary in
// dictionary.py: d_k <- proj(d_k + (b_k - a_k D) / A_kk) for every atom with A_kk > 0, where proj clips
// negative entries (positive) and scales back onto the unit ball.

#include "common.h"

void bcd_sweep(torch::Tensor D, torch::Tensor A, torch::Tensor B, bool positive) {
  TORCH_CHECK(D.device().is_cpu() && D.is_contiguous() && A.is_contiguous() && B.is_contiguous(),
              "bcd_sweep runs on contiguous CPU tensors");
  const int64_t m = D.size(0), p = D.size(1);
  AT_DISPATCH_FLOATING_TYPES(D.scalar_type(), "bcd_sweep", [&] {
    scalar_t* d = D.data_ptr<scalar_t>();
    const scalar_t* a = A.data_ptr<scalar_t>();
    const scalar_t* b = B.data_ptr<scalar_t>();
    std::vector<scalar_t> u(p);
    for (int64_t k = 0; k < m; ++k) {
      const scalar_t akk = a[k * m + k];
      if (!(akk > 0)) continue;
      for (int64_t f = 0; f < p; ++f) u[f] = b[k * p + f];
      for (int64_t j = 0; j < m; ++j) {
        const scalar_t w = a[k * m + j];
        if (w == 0) continue;
        const scalar_t* row = d + j * p;
        for (int64_t f = 0; f < p; ++f) u[f] -= w * row[f];
      }
      scalar_t norm2 = 0;
      for (int64_t f = 0; f < p; ++f) {
        scalar_t v = d[k * p + f] + u[f] / akk;
        if (positive && v < 0) v = 0;
        u[f] = v;
        norm2 += v * v;
      }
      const scalar_t scale = scalar_t(1) / std::max(std::sqrt(norm2), scalar_t(1));
      for (int64_t f = 0; f < p; ++f) d[k * p + f] = u[f] * scale;
    }
  });
}
