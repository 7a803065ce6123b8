#!/usr/bin/env bash
# The GPU checks as one prepared run (at most about 8 minutes on an H200, within one device command): one step of
# dictionary learning split into coding and sweeps, a slice of the regime grid, one pass of dictionary learning
# and the encode benchmark on CUDA, each against SPAMS on 2 CPU threads, then the test suite with device="auto"
# resolving to CUDA. From the repository root, on a machine with a GPU, torch, scikit-learn and (optionally)
# SPAMS and pytest-xdist:
#
#     bash benchmarks/gpu_check.sh [output folder, default gpu_check]
#
# Each step has a time limit, so that a slow one leaves the others their turn; the logs go to the folder. The
# benchmarks come first (their figures are what a GPU session is for), the tests last.
set -uo pipefail
out=$(realpath -m "${1:-gpu_check}")
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
cd benchmarks
timeout 40 python3 profile_dictionary_step.py --device cuda 2>&1 | tee "$out/step.log"
timeout 180 python3 bench_encode.py --grid --device cuda --grid-samples 5000 --dicts learned coherent \
    --overcomplete 4 --inputs unit --solvers auto cd fista omp --skip sklearn 2>&1 | tee "$out/grid.log"
timeout 60 python3 bench_dictionary.py --device cuda --skip sklearn 2>&1 | tee "$out/dictionary.log"
timeout 60 python3 bench_encode.py --device cuda --skip lasso_lars 2>&1 | tee "$out/encode.log"
cd ..
python3 -m sparsecode.build_kernels
workers=$(python3 -c "import xdist" 2>/dev/null && echo "-n 12")
timeout 170 python3 -m pytest -p no:cacheprovider -q $workers -rfE >"$out/tests.log" 2>&1
tail -5 "$out/tests.log"
