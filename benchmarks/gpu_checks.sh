#!/usr/bin/env bash
# The checks and figures that need a CUDA GPU, in one script (the CPU-only CI cannot run them).
#
#   bash benchmarks/gpu_checks.sh tests [cuda-only]  # CUDA tests (+ the whole suite) on the GPU machine's Python
#   bash benchmarks/gpu_checks.sh train [train.py flags]  # quick start trained on the GPU, then F / speed per precision
#   bash benchmarks/gpu_checks.sh speed       # bench_dcn, bench_train_step, bench_inference speed mode on the GPU
#
# Logs go to $LOG_DIR (default ./gpu_logs). Wheels in .whl/ (shapely, pyclipper, ...) are installed into the
# running Python first when present, for machines without a package index.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG_DIR=${LOG_DIR:-gpu_logs}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl
fi
python3 - <<'EOF'
import onnxruntime, torch, torchvision
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda,
      'cudnn', torch.backends.cudnn.version(), 'onnxruntime', onnxruntime.__version__,
      onnxruntime.get_available_providers())
print('GPU:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')
EOF

case "${1:-tests}" in
tests)
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$LOG_DIR/test_cuda.log"
    [ "${2:-}" = cuda-only ] || python3 -m pytest -q -p no:cacheprovider -n 8 2>&1 | tail -30 | tee "$LOG_DIR/test_all.log"
    ;;
train)
    workspace=$(mktemp -d)
    start=$(date +%s)
    timeout "${TRAIN_TIMEOUT:-330}" python3 train.py experiments/synthetic/quickstart.yaml --device cuda --no-progress \
        --workspace_root "$workspace" --opt Experiment.train.data_loader.num_workers=12 "${@:2}" \
        > "$LOG_DIR/train.log" 2>&1
    echo "train.py exit $? after $(( $(date +%s) - start )) s"
    python3 -m tools.training_curve "$workspace/quickstart" 2>&1 | tee "$LOG_DIR/curve.txt"
    cp "$workspace/quickstart/metrics.jsonl" "$LOG_DIR/metrics.jsonl"
    python3 -m benchmarks.bench_inference --device cuda --checkpoint "$workspace/quickstart/model/final" \
        --experiment experiments/synthetic/quickstart.yaml --variants plain,optimized,fp16,bf16 --repeats 5 \
        --timing_images 48 --cudnn_benchmark 2>&1 | tee "$LOG_DIR/accuracy.txt"
    ;;
speed)
    python3 -m benchmarks.bench_dcn --device cuda --size 1024 --repeat 50 2>&1 | tee "$LOG_DIR/bench_dcn.txt"
    for amp in "" --amp; do  # training images/s at 640x640 batch 16: bench_train_pipeline's --gpu_images_per_s
        python3 -m benchmarks.bench_train_step --device cuda --cudnn_benchmark $amp 2>&1 | tee -a "$LOG_DIR/bench_train_step.txt"
    done
    for batch in 1 8; do
        python3 -m benchmarks.bench_inference --device cuda --variants plain,optimized,fp16,bf16 --batch $batch \
            --repeats 30 --e2e_repeats 5 --cudnn_benchmark 2>&1 | tee "$LOG_DIR/bench_inference_b$batch.txt"
    done
    ;;
esac
