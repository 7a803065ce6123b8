// The Python module: binds the kernels of homotopy.cpp, cd.cpp, fista.cpp, omp.cpp and dictionary.cpp.

#include <torch/python.h>

#include "common.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  // the kernels touch no Python object: release the GIL so that threads (joblib's n_jobs) run them at once
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  module.def("lasso_path", &lasso_path, "Lasso homotopy per sample (CPU)", nogil);
  module.def("cyclic_cd", &cyclic_cd, "Cyclic coordinate descent on the Gram matrix per sample (CPU)", nogil);
  module.def("fista_working_sets", &fista_working_sets,
             "FISTA with gap-safe screening on working sets, Gram form, per sample (CPU)", nogil);
  module.def("batch_omp", &batch_omp, "Batch OMP on the Gram matrix per sample (CPU)", nogil);
  module.def("bcd_sweep", &bcd_sweep, "One block-coordinate sweep over the atoms, in place (CPU)", nogil);
}
