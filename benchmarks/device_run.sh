#!/usr/bin/env bash
# One call on a lent GPU machine does it all: build the CUDA extension, run the GPU tests, benchmark
# every op at the Cosmos-7B 720p shapes against eager and torch.compile, sweep attention shapes for
# the backend="auto" crossover, profile DiT training steps at the Cosmos-7B shape (where the time goes,
# kernel by kernel), write JSON under $OUT and print a short table last. The device image
# has torch, triton, nvcc and pytest-benchmark but no registry access, hence --no-build-isolation
# --no-deps; its Python is `python3` (a plain `python` may be missing).
#   usage: OUT=/some/dir [PHASES="build tests bench crossover profile" (also: ring, attention8, diffusers)] [BENCH_ONLY="attention,qk_norm_rope"] \
#          [BENCH_REPS=20] [BENCH_BACKENDS=auto,triton] [BENCH_ARGS=--no-compile] [TESTS="tests/test_x.py"] \
#          [BUILD_CUDA=0] [TESTS_TIMEOUT=330] [BENCH_TIMEOUT=420] [CROSSOVER_TIMEOUT=240] \
#          [CROSSOVER_SHAPES="8x44x80,cross"] [PROFILE_TIMEOUT=150] [RING_TIMEOUT=120] \
#          bash benchmarks/device_run.sh [--quick]
# A device call may run 600 s at most, a session gets 15 min of device time with the machine's start
# included, and a machine stays warm only 30 s after a call. Seen on 2026-11-26 (H100): a start costs
# ~30 s, the build with the CUDA extension 59 s (2 s without: BUILD_CUDA=0), all 130 GPU tests on 8
# xdist workers 103 s (Triton compiling every autotune candidate), torch.compile peers 20-60 s each.
# That session ran, in order (raw outputs in benchmarks/runs/2026-11-26-h100-call*):
#   1. PHASES="build tests bench crossover" TESTS_TIMEOUT=120 BENCH_TIMEOUT=190 CROSSOVER_TIMEOUT=110 \
#      BENCH_ONLY="attention,qk_norm_rope" BENCH_REPS=10                                  (426 s)
#   2. sent at once, on the warm machine (the build is kept): PHASES="bench" BENCH_REPS=10 BENCH_ONLY=\
#      "adaln_modulate,gated_residual_adaln,haar3d_analysis,haar3d_synthesis,group_norm_silu,cv8x8x8 encode,cv8x8x8 decode,dit block fwd"
#                                                                                           (145 s)
#   3. after fixes: BUILD_CUDA=0 TESTS="<four test files>" BENCH_ARGS=--no-compile ...     (195 s)
# (BENCH_ONLY is `cosmos-kernels bench --only`; the JSON is written after every case, so a timeout
# keeps what was measured.)
# The second session (same date, H100; raw outputs in benchmarks/runs/2026-11-26-h100-call{4..8}) ran:
#   4. BUILD_CUDA=0 PHASES="build tests bench profile" TESTS_TIMEOUT=190 BENCH_ARGS=--no-compile \
#      BENCH_REPS=10 BENCH_ONLY="attention,qk_norm_rope,adaln_modulate,gated_residual_adaln,group_norm_silu,dit block" \
#      BENCH_TIMEOUT=170 PROFILE_TIMEOUT=100                                                (294 s)
#   5. at once: PHASES="crossover ring" CROSSOVER_SHAPES="4x32x64,1x32x32,cross,D 64,8x44x80"  (90 s)
#   6-8. one-off diagnoses (scripts kept beside their outputs), ~60 s each.
# With 15 minutes a session, a start ~30-60 s: two full calls fit, sent back to back.
# Left for a next session: the ring merge pass (`attention_crossover.py --ring` times the block
# kernels only), the torch.compile peers in the same run as ours (drop BENCH_ARGS=--no-compile on one
# op family per call: each compile costs 20-60 s), the chunked tokenizer's peak memory.
# A call returns at most 8 files, so the default PHASES leave "ring" out: with every phase there would
# be 9 (ring_blocks.json).
# diffusers' Cosmos models (bench cases "diffusers ...", tests/test_diffusers_*.py) need diffusers, which
# the image lacks: install it here for the image's Python with `pip install --target .device_deps
# --python-version 3.12 --only-binary=:all: diffusers`, carry .device_deps, set PYDEPS=.device_deps; then
# BENCH_ONLY=diffusers runs the Cosmos-1.0-7B and Predict2-2B blocks and the CV8x8x8 VAE, each
# unpatched, patched, and compiled (BENCH_ARGS must not hold --no-compile for the compile columns).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -n "${PYDEPS:-}" ] && export PYTHONPATH="$PWD/$PYDEPS${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-$(mktemp -d)}
PHASES=${PHASES:-"build tests bench crossover profile"}
PY=${PY:-python3}
SHAPES=cosmos
[ "${1:-}" = "--quick" ] && SHAPES=quick
mkdir -p "$OUT"
status=0
export COLUMNS=${COLUMNS:-200}  # rich wraps tables and lines at 80 columns when not on a terminal

step() { echo; echo "== $* ($(date +%T))"; }

step "machine"
# A device call brings back at most 8 files: machine.txt (with `info --json` after the build),
# build.log, gpu_tests.txt, bench_*.json, bench.txt, crossover.json, crossover.txt, profile.json.
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  $PY -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

if [[ " $PHASES " == *" build "* ]]; then
  step "build"
  start=$SECONDS
  if COSMOS_KERNELS_BUILD_CUDA=${BUILD_CUDA:-1} $PY -m pip install --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1; then
    echo "extension built in $((SECONDS - start)) s"
  else
    tail -40 "$OUT/build.log"; echo "BUILD FAILED: the Triton backend is still tested"; status=1
  fi
fi
$PY -m cosmos_kernels.cli info --json 2>&1 | tee -a "$OUT/machine.txt"

if [[ " $PHASES " == *" tests "* ]]; then
  step "GPU tests"
  # Triton compiles (and autotunes) each kernel variant once per process: spread them over workers.
  workers=$($PY -c "import xdist" 2>/dev/null && echo "-n ${TEST_WORKERS:-8}")
  timeout -k 10 "${TESTS_TIMEOUT:-330}" $PY -m pytest ${TESTS:-tests} -m gpu -q -p no:cacheprovider $workers \
    2>&1 | tee "$OUT/gpu_tests.txt" | tail -25
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  pkill -f "pytest ${TESTS:-tests} -m gpu" 2>/dev/null
fi

if [[ " $PHASES " == *" bench "* ]]; then
  step "benchmarks ($SHAPES shapes, bf16)"
  # auto is what users get (for attention: our prologue pass, then SDPA); triton and cuda are the kernels.
  backends=auto,triton
  $PY -c "import cosmos_kernels.cuda as c, sys; sys.exit(0 if c.is_built() else 1)" && backends=auto,triton,cuda
  backends=${BENCH_BACKENDS:-$backends}
  timeout "${BENCH_TIMEOUT:-420}" $PY -m cosmos_kernels.cli bench --backend "$backends" --reps "${BENCH_REPS:-20}" \
    --json "$OUT/bench_${SHAPES}.json" $([ "$SHAPES" = quick ] && echo --quick) ${BENCH_ONLY:+--only "$BENCH_ONLY"} $BENCH_ARGS \
    2>&1 | tee "$OUT/bench.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

if [[ " $PHASES " == *" crossover "* ]]; then
  step "attention crossover: ours vs fused prologue + best SDPA"
  timeout "${CROSSOVER_TIMEOUT:-240}" $PY benchmarks/attention_crossover.py --json "$OUT/crossover.json" \
    $([ "$SHAPES" = quick ] && echo --quick) ${CROSSOVER_SHAPES:+--shapes "$CROSSOVER_SHAPES"} \
    2>&1 | tee "$OUT/crossover.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

if [[ " $PHASES " == *" ring "* ]]; then
  step "ring attention's block kernels at the shard sizes of 2, 4 and 8 GPUs"
  timeout "${RING_TIMEOUT:-120}" $PY benchmarks/attention_crossover.py --ring --json "$OUT/ring_blocks.json" \
    2>&1 | tee -a "$OUT/crossover.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

if [[ " $PHASES " == *" attention8 "* ]]; then
  # 8-bit attention (issue 19): the kernels against their emulation on the GPU, one Cosmos-7B block's
  # error and time at each precision, and the benchmark at 56,320 tokens, 32 x 128 heads, prologue
  # included, against cuDNN bf16, our exact path and SageAttention 1.0.6 when importable. To measure
  # SageAttention, carry it with the tree: `pip install sageattention==1.0.6 --no-deps --target .sage`
  # here, then run with carry=[".sage"] and SAGE_DIR=.sage. Files: attention8.txt,
  # attention8_block.json, bench_attention8.json.
  step "8-bit attention"
  [ -n "${SAGE_DIR:-}" ] && export PYTHONPATH="$PWD/$SAGE_DIR${PYTHONPATH:+:$PYTHONPATH}"
  timeout "${ATTN8_TESTS_TIMEOUT:-150}" $PY -m pytest tests/test_attention_8bit.py -m gpu -q -p no:cacheprovider \
    2>&1 | tee "$OUT/attention8.txt" | tail -5
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  timeout "${ATTN8_BLOCK_TIMEOUT:-120}" $PY benchmarks/attention_8bit_block.py \
    $([ "$SHAPES" = quick ] && echo --grid 4x16x32) --json "$OUT/attention8_block.json" 2>&1 | tee -a "$OUT/attention8.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  timeout "${ATTN8_BENCH_TIMEOUT:-180}" $PY -m cosmos_kernels.cli bench --backend auto --reps "${BENCH_REPS:-10}" \
    --no-compile --only attention-8bit --json "$OUT/bench_attention8.json" \
    $([ "$SHAPES" = quick ] && echo --quick) 2>&1 | tee -a "$OUT/attention8.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

if [[ " $PHASES " == *" diffusers "* ]]; then
  # apply_cosmos_kernels on diffusers' models (issue 18): the bf16 GPU tests against the float32 model,
  # then diffusers' Cosmos-1.0-7B and Predict2-2B blocks and the CV8x8x8 VAE, unpatched, patched and
  # compiled, at the Cosmos shapes (needs PYDEPS, see above). Files: diffusers.txt, bench_diffusers.json.
  step "diffusers' Cosmos models, patched against unpatched"
  timeout "${DIFFUSERS_TESTS_TIMEOUT:-150}" $PY -m pytest tests/test_diffusers_integration.py -m gpu -q \
    -p no:cacheprovider 2>&1 | tee "$OUT/diffusers.txt" | tail -5
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  timeout "${DIFFUSERS_BENCH_TIMEOUT:-300}" $PY -m cosmos_kernels.cli bench --backend auto --reps "${BENCH_REPS:-10}" \
    --only diffusers --json "$OUT/bench_diffusers.json" $([ "$SHAPES" = quick ] && echo --quick) \
    2>&1 | tee -a "$OUT/diffusers.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

if [[ " $PHASES " == *" profile "* ]]; then
  # Two blocks of Cosmos-7B at 121 frames 720p (56,320 tokens, 512 text tokens), forward + backward.
  step "profile: DiT training steps, kernels by time"
  latent="16 88 160"; [ "$SHAPES" = quick ] && latent="4 32 32"
  timeout "${PROFILE_TIMEOUT:-150}" $PY -m cosmos_kernels.cli profile --model cosmos-7b --blocks 2 \
    --latent $latent --text-len 512 --steps 2 --top 15 --trace-dir /tmp/cosmos_kernels_traces \
    --json "$OUT/profile.json" 2>&1 | tee -a "$OUT/machine.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

step "summary"
[ -f "$OUT/gpu_tests.txt" ] && grep -E "passed|failed" "$OUT/gpu_tests.txt" | tail -1
[ -f "$OUT/bench.txt" ] && grep -E "^[a-z0-9_ +-]+ \[|failed" "$OUT/bench.txt"
[ -f "$OUT/crossover.txt" ] && grep -E "^│|^┃|^ring step" "$OUT/crossover.txt"
[ -f "$OUT/attention8.txt" ] && grep -E "passed|failed|^\{|^attention-8bit" "$OUT/attention8.txt"
[ -f "$OUT/diffusers.txt" ] && grep -E "passed|failed|^diffusers" "$OUT/diffusers.txt"
[ -f "$OUT/profile.json" ] && grep -E "^rank 0|^ +[0-9.]+ ms" "$OUT/machine.txt" | head -8
exit $status
