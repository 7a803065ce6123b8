// Compiled CPU kernels, built on first use by _extension.py; each has a torch twin that runs elsewhere
// (and wherever these files cannot be built), and the tests hold the two equal. This header holds what every
// kernel file includes and the entry points that module.cpp binds; each kernel's helpers stay in its own
// file's anonymous namespace. torch/types.h rather than torch/extension.h: the kernels need tensors only,
// and the full header takes three times as long to compile in each file (module.cpp adds the bindings).

#pragma once

#include <torch/types.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

// homotopy.cpp
std::vector<torch::Tensor> lasso_path(torch::Tensor C0, torch::Tensor G, torch::Tensor xx, double alpha,
                                      bool positive, int64_t max_steps, int64_t kmax, bool lar, int64_t max_active,
                                      double tol, bool round32);
// cd.cpp
std::vector<torch::Tensor> cyclic_cd(torch::Tensor C0, torch::Tensor G, torch::Tensor xx, torch::Tensor Z,
                                     double alpha, bool positive, int64_t max_sweeps, double tol);
// omp.cpp
std::vector<torch::Tensor> batch_omp(torch::Tensor X, torch::Tensor D, torch::Tensor C0, torch::Tensor G,
                                     int64_t k);
// dictionary.cpp
void bcd_sweep(torch::Tensor D, torch::Tensor A, torch::Tensor B, bool positive);
