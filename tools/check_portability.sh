#!/usr/bin/env bash
# Runs the README's quick start and test command as if on other CPUs: each setting limits the instruction sets
# that PyTorch (ATEN_CPU_CAPABILITY), oneDNN (ONEDNN_MAX_CPU_ISA), OpenCV (OPENCV_CPU_DISABLE) and NumPy
# (NPY_DISABLE_CPU_FEATURES) dispatch to, so that a check which holds only on the development machine's CPU
# fails here. ONNX Runtime has no such switch; its kernels follow the machine. Run it before a change to numerics,
# exports or tests that compare outputs is submitted.
#
#   bash tools/check_portability.sh                      # every setting: quick start, then the test command
#   bash tools/check_portability.sh avx2 plain           # some settings
#   STEPS=quickstart bash tools/check_portability.sh     # only the quick start (STEPS=tests: only the tests)
#
# Settings: avx2 (an AVX2-only laptop or server), avx512 (AVX-512 without VNNI, bf16 or AMX), plain (no vector
# extension past SSE3 where a library can turn it off). Each run writes under $OUT (default
# workspace/portability/<setting>/) and its log; a summary line per setting ends the output; exit 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-workspace/portability}
STEPS=${STEPS:-quickstart tests}
SETTINGS=("$@")
[ ${#SETTINGS[@]} -gt 0 ] || SETTINGS=(avx2 avx512 plain)

environment() {  # environment SETTING: the variables of one emulated CPU, as NAME=VALUE words
    case $1 in
    avx2) echo "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENCV_CPU_DISABLE=AVX512-SKX,AVX512-CLX" \
        "NPY_DISABLE_CPU_FEATURES=X86_V4,AVX512_ICL,AVX512_SPR" ;;
    avx512) echo "ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX512_CORE OPENCV_CPU_DISABLE=AVX512-CLX" \
        "NPY_DISABLE_CPU_FEATURES=AVX512_SPR" ;;
    plain) echo "ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41" \
        "OPENCV_CPU_DISABLE=SSE4.1,SSE4.2,AVX,FP16,AVX2,AVX_VNNI,AVX512-SKX,AVX512-CLX" \
        "NPY_DISABLE_CPU_FEATURES=X86_V3,X86_V4,AVX512_ICL,AVX512_SPR" ;;
    *) echo "error: unknown setting '$1'; use avx2, avx512 or plain" >&2; return 2 ;;
    esac
}

quickstart() {  # the README's first command, into this setting's folder (its own ONNX cache: a fresh export)
    local dir=$1
    python train.py experiments/synthetic/quickstart.yaml --name "quickstart_$setting" --workspace_root "$dir" \
        --no-progress &&
        python demo.py experiments/synthetic/quickstart.yaml --resume "$dir/quickstart_$setting/model/final" \
            --image_path assets/images --image_short_side 384 --box_thresh 0.5 --visualize \
            --result_dir "$dir/demo_results" --cache_dir "$dir/onnx_cache" &&
        [ "$(find "$dir/demo_results" -name '*.jpg' | wc -l)" -gt 0 ]
}

tests() {  # every test (the README's test command and the slow tests, as .ci/run), after the installation
    ruff check . && ruff format --check . && python -m pytest -n 2 --dist worksteal -q -p no:cacheprovider
}

summary=()
status=0
for setting in "${SETTINGS[@]}"; do
    variables=$(environment "$setting") || exit 2
    dir=$OUT/$setting
    mkdir -p "$dir"
    for step in $STEPS; do
        start=$(date +%s)
        echo "== $setting / $step: $variables"
        # shellcheck disable=SC2086  # the variables are words on purpose
        env $variables DBNET_CACHE_DIR="$dir/onnx_cache" bash -c "$(declare -f quickstart tests); setting=$setting; $step '$dir'" \
            >"$dir/$step.log" 2>&1
        rc=$?
        line="$setting / $step: $([ $rc = 0 ] && echo passed || echo "FAILED (exit $rc, $dir/$step.log)") in $(($(date +%s) - start)) s"
        echo "$line"
        tail -3 "$dir/$step.log"
        summary+=("$line")
        [ $rc = 0 ] || status=1
    done
done
printf '%s\n' "== summary" "${summary[@]}"
exit $status
