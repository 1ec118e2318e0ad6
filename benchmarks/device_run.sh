#!/usr/bin/env bash
# One call on a lent GPU machine does it all: build the CUDA extension, run the GPU tests, benchmark
# every op at the Cosmos-7B 720p shapes against eager and torch.compile, write JSON under $OUT and
# print a short table last. The device image has torch, triton, nvcc and pytest-benchmark but no
# registry access, hence --no-build-isolation --no-deps.
#   usage: OUT=/some/dir [PHASES="tests bench"] [BENCH_ONLY="attention,qk_norm_rope"] \
#          [TESTS_TIMEOUT=330] [BENCH_TIMEOUT=420] bash benchmarks/device_run.sh [--quick]
# A device call may run 600 s at most, and a session gets 15 min of device time with the machine's
# start included, so plan one call of about 8 min: the build, the GPU tests, then the benchmarks
# that matter most first, e.g.
#   PHASES="tests bench" TESTS_TIMEOUT=240 BENCH_TIMEOUT=240 BENCH_ONLY="attention,qk_norm_rope,dit block"
# (BENCH_ONLY is `cosmos-kernels bench --only`; the JSON is written after every case, so a timeout
# keeps what was measured), and a second call for the other cases if time is left.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PHASES=${PHASES:-"tests bench"}
SHAPES=cosmos
[ "${1:-}" = "--quick" ] && SHAPES=quick
mkdir -p "$OUT"
status=0

step() { echo; echo "== $* ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.csv"
python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" \
  | tee "$OUT/versions.txt"

step "build"
start=$SECONDS
if COSMOS_KERNELS_BUILD_CUDA=1 pip install --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1; then
  echo "extension built in $((SECONDS - start)) s"
else
  tail -40 "$OUT/build.log"; echo "BUILD FAILED: the Triton backend is still tested"; status=1
fi
cosmos-kernels info --json >"$OUT/info.json" 2>&1; cat "$OUT/info.json"

if [[ " $PHASES " == *" tests "* ]]; then
  step "GPU tests"
  timeout "${TESTS_TIMEOUT:-330}" python -m pytest tests -m gpu -q -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" \
    2>&1 | tee "$OUT/gpu_tests.txt" | tail -25
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

if [[ " $PHASES " == *" bench "* ]]; then
  step "benchmarks ($SHAPES shapes, bf16)"
  backends=triton
  python -c "import cosmos_kernels.cuda as c, sys; sys.exit(0 if c.is_built() else 1)" && backends=triton,cuda
  timeout "${BENCH_TIMEOUT:-420}" cosmos-kernels bench --backend "$backends" --json "$OUT/bench_${SHAPES}.json" \
    $([ "$SHAPES" = quick ] && echo --quick) ${BENCH_ONLY:+--only "$BENCH_ONLY"} 2>&1 | tee "$OUT/bench.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

step "summary"
[ -f "$OUT/gpu_tests.txt" ] && grep -E "passed|failed" "$OUT/gpu_tests.txt" | tail -1
[ -f "$OUT/bench.txt" ] && tail -40 "$OUT/bench.txt"
exit $status
