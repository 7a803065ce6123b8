#!/usr/bin/env bash
# The GPU checks as one prepared run (about 6 minutes on an H200): the test suite with device="auto"
# resolving to CUDA, then the encode benchmark, a slice of the regime grid and one pass of dictionary
# learning on CUDA, each against SPAMS and scikit-learn on 2 CPU threads. From the repository root, on a
# machine with a GPU, torch, scikit-learn and (optionally) SPAMS and pytest-xdist:
#
#     bash benchmarks/gpu_check.sh [output folder, default gpu_check]
#
# Each step has a time limit, so that a slow one leaves the others their turn; the logs go to the folder.
set -uo pipefail
out=$(realpath -m "${1:-gpu_check}")
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
python3 -m sparsecode.build_kernels
workers=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")
timeout 300 python3 -m pytest -p no:cacheprovider -q $workers -rfE >"$out/tests.log" 2>&1
tail -5 "$out/tests.log"
cd benchmarks
timeout 120 python3 bench_encode.py --device cuda --skip lasso_lars 2>&1 | tee "$out/encode.log"
timeout 240 python3 bench_encode.py --grid --device cuda --grid-samples 5000 --dicts learned coherent \
    --overcomplete 4 --inputs unit --solvers auto cd fista omp --skip sklearn 2>&1 | tee "$out/grid.log"
timeout 120 python3 bench_dictionary.py --device cuda --skip sklearn 2>&1 | tee "$out/dictionary.log"
