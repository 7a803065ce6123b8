// bcd_sweep: one block-coordinate sweep over the atoms (rows of D), in place, as update_dictionary in
// dictionary.py: d_k <- proj(d_k + (b_k - a_k D) / A_kk) for every atom with A_kk > 0, where proj clips
// negative entries (positive) and scales back onto the unit ball.
//
// The atoms are visited in order, as one atom after another, but in blocks of kBlock: the products
// b_k - a_k D of a block's atoms come from one matrix product with the dictionary as the block starts,
// and each atom then subtracts what the atoms before it in the block changed,
// sum_{j<k in block} A_kj (d_j' - d_j). Same sweep, up to rounding; a matrix product instead of one
// matrix-vector product per atom.

#include "common.h"

namespace {
constexpr int64_t kBlock = 32;
}

void bcd_sweep(torch::Tensor D, torch::Tensor A, torch::Tensor B, bool positive) {
  TORCH_CHECK(D.device().is_cpu() && D.is_contiguous() && A.is_contiguous() && B.is_contiguous(),
              "bcd_sweep runs on contiguous CPU tensors");
  const int64_t m = D.size(0), p = D.size(1);
  torch::Tensor change = torch::empty({std::min(kBlock, m), p}, D.options());
  AT_DISPATCH_FLOATING_TYPES(D.scalar_type(), "bcd_sweep", [&] {
    scalar_t* d = D.data_ptr<scalar_t>();
    const scalar_t* a = A.data_ptr<scalar_t>();
    scalar_t* delta = change.data_ptr<scalar_t>();
    for (int64_t start = 0; start < m; start += kBlock) {
      const int64_t nb = std::min(kBlock, m - start);
      // rows b_k - a_k D of the block, with D as the block starts
      torch::Tensor U = torch::addmm(B.narrow(0, start, nb), A.narrow(0, start, nb), D, 1, -1);
      scalar_t* u = U.data_ptr<scalar_t>();
      for (int64_t i = 0; i < nb; ++i) {
        const int64_t k = start + i;
        scalar_t* uk = u + i * p;
        scalar_t* dk = d + k * p;
        scalar_t* ck = delta + i * p;
        const scalar_t akk = a[k * m + k];
        if (!(akk > 0)) {
          std::fill(ck, ck + p, scalar_t(0));
          continue;
        }
        for (int64_t j = 0; j < i; ++j) {
          const scalar_t w = a[k * m + start + j];
          if (w == 0) continue;
          const scalar_t* cj = delta + j * p;
          for (int64_t f = 0; f < p; ++f) uk[f] -= w * cj[f];
        }
        scalar_t norm2 = 0;
        for (int64_t f = 0; f < p; ++f) {
          scalar_t v = dk[f] + uk[f] / akk;
          if (positive && v < 0) v = 0;
          uk[f] = v;
          norm2 += v * v;
        }
        const scalar_t scale = scalar_t(1) / std::max(std::sqrt(norm2), scalar_t(1));
        for (int64_t f = 0; f < p; ++f) {
          const scalar_t v = uk[f] * scale;
          ck[f] = v - dk[f];
          dk[f] = v;
        }
      }
    }
  });
}
