#!/usr/bin/env bash
# Trains the detector shipped in assets/models/ (docs/models.md) on one GPU within a fixed time: ResNet-18 DB
# (the CPU recipe's network, experiments/icdar2015/ic15_resnet18_cpu.yaml), pre-trained on the built-in
# synthetic 'photo' scenes, then fine-tuned on the 900 training photos of the fixed ICDAR 2015 split.
#
#   python -m tools.split_dataset datasets/icdar2015 --val 100 --seed 0
#   DATA=datasets/icdar2015 bash tools/train_release_model.sh
#
# Steps, each a plain train.py run under workspace/release/ (WS):
#   1. probe: PROBE_ITERS iterations of the fine-tuning, to measure the images/s this machine reaches;
#   2. pre-training: experiments/synthetic/pretrain_cpu.yaml at batch BATCH for about PRETRAIN_S seconds (the
#      generator runs at about SYNTH_RATE images/s per worker; a run past its time is stopped with SIGTERM,
#      which saves model_latest);
#   3. fine-tuning: the recipe at batch BATCH, CROP x CROP windows, an EMA of the weights (EMA), for as many whole
#      epochs as fit in FINETUNE_S seconds at the probed rate (the learning rate decays over exactly those).
# The weights of each step end in $WS/<step>.weights (EMA and raw for the fine-tuning). On a CPU (DEVICE=cpu)
# give the budgets in hours: the same steps run, about 100x slower.
#
# DATA may hold the photos as .webp (a smaller copy for transfer): they are converted to .jpg (quality 95) first.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?folder in the DB layout with train_images/, train_gts/ and split_train_list.txt}
WS=${WS:-workspace/release}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-14}
BATCH=${BATCH:-16}
CROP=${CROP:-640}
EMA=${EMA:-0.999}
PROBE_ITERS=${PROBE_ITERS:-80}
PRETRAIN_S=${PRETRAIN_S:-120}
FINETUNE_S=${FINETUNE_S:-330}
SYNTH_RATE=${SYNTH_RATE:-14}
DEADLINE_S=${DEADLINE_S:-100000}   # the whole script ends by then (the fine-tuning is shortened to fit)
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
RECIPE=experiments/icdar2015/ic15_resnet18_cpu.yaml
PRETRAIN=experiments/synthetic/pretrain_cpu.yaml
mkdir -p "$WS"
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*"; }

# ----- the photos: a folder whose name says icdar (the reader picks the ICDAR 2015 format by it)
IC15=$WS/icdar2015
mkdir -p "$IC15/train_images"
cp -r "$DATA/train_gts" "$IC15/"
cp "$DATA/split_train_list.txt" "$WS/train_list.txt"
"$PYTHON" - "$DATA/train_images" "$IC15/train_images" <<'EOF'
import os, shutil, sys
from concurrent.futures import ProcessPoolExecutor
import cv2
source, target = sys.argv[1:]
def convert(name):
    stem, ext = os.path.splitext(name)
    if ext.lower() == '.webp':
        image = cv2.imread(os.path.join(source, name), cv2.IMREAD_COLOR)
        cv2.imwrite(os.path.join(target, stem + '.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        shutil.copy(os.path.join(source, name), os.path.join(target, name))
with ProcessPoolExecutor() as pool:
    list(pool.map(convert, sorted(os.listdir(source)), chunksize=16))
EOF
PHOTOS=$(wc -l <"$WS/train_list.txt")
stamp "data: $PHOTOS photos in $IC15"

COMMON=(--device "$DEVICE" --num_workers "$WORKERS" --batch_size "$BATCH" --no-validate --no-progress
        --workspace_root "$WS" --opt Experiment.train.model_saver.save_interval=1000000)
[ "${DEVICE%%:*}" = cuda ] && COMMON+=(--amp --channels_last --benchmark)
DATA_OPTS=(--opt "train_data.data_dir=['$IC15/']" --opt "train_data.data_list=['$WS/train_list.txt']"
           --opt "train_data.processes.0.size=[$CROP, $CROP]" --opt train_data.processes.4.on_device=True)

weights_of() {  # weights_of RUN KEY OUT: one state dict of a run's last checkpoint (final, else model_latest)
    local checkpoint=$WS/$1/model/final
    [ -f "$checkpoint" ] || checkpoint=$WS/$1/model/model_latest
    "$PYTHON" -c "import sys, torch; c = torch.load(sys.argv[1], weights_only=True, map_location='cpu'); torch.save(c[sys.argv[2]], sys.argv[3])" \
        "$checkpoint" "$2" "$3" && stamp "weights: $3 ($2 of $checkpoint)"
}

# ----- 1. probe (on CUDA, a failure drops the speed flags one by one: the run still happens)
probe() {
    rm -rf "$WS/probe"
    "$PYTHON" train.py "$RECIPE" --name probe "${COMMON[@]}" "${DATA_OPTS[@]}" --max_iterations "$PROBE_ITERS" \
        --opt Experiment.logger.log_interval=$((PROBE_ITERS / 4)) >"$WS/probe.log" 2>&1 &&
        "$PYTHON" -c "import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; \
print(int([r['images_per_s'] for r in rows if 'images_per_s' in r][-1]))" "$WS/probe/metrics.jsonl"
}
RATE=$(probe)
for flag in --benchmark --channels_last --amp; do
    [ -n "$RATE" ] && break
    stamp "probe failed with ${COMMON[*]}: $(tail -2 "$WS/probe.log")"
    for i in "${!COMMON[@]}"; do [ "${COMMON[$i]}" = "$flag" ] && unset 'COMMON[i]'; done
    COMMON=("${COMMON[@]}")
    RATE=$(probe)
done
[ -n "$RATE" ] || { stamp "probe failed: $(tail -5 "$WS/probe.log")"; exit 1; }
stamp "probe: $RATE images/s ($(grep -o 'data wait [0-9]*%' "$WS/probe.log" | tail -1)); flags ${COMMON[*]}"

# ----- 2. pre-training
ITERS=$((WORKERS * SYNTH_RATE * PRETRAIN_S / BATCH))
timeout -s TERM $((PRETRAIN_S + 40)) "$PYTHON" train.py "$PRETRAIN" --name pretrain "${COMMON[@]}" \
    --epochs 1 --opt "train_data.num_samples=$((ITERS * BATCH))" --opt train_data.processes.4.on_device=True \
    >"$WS/pretrain.log" 2>&1
stamp "pre-training: exit $?, $ITERS iterations planned; $(grep -o 'images/s, data wait [0-9]*%' "$WS/pretrain.log" | tail -1)"
weights_of pretrain model "$WS/pretrain.weights"

# ----- 3. fine-tuning
LEFT=$((T0 + DEADLINE_S - $(date +%s) - 45))
[ "$FINETUNE_S" -le "$LEFT" ] || FINETUNE_S=$LEFT
EPOCHS=$((RATE * 9 / 10 * FINETUNE_S / PHOTOS))   # 0.9: the EMA update and the saves
[ "$EPOCHS" -ge 1 ] || EPOCHS=1
INIT=()
[ -f "$WS/pretrain.weights" ] && INIT=(--init_weights "$WS/pretrain.weights")
timeout -s TERM $((T0 + DEADLINE_S - $(date +%s) - 10)) "$PYTHON" train.py "$RECIPE" --name finetune "${COMMON[@]}" \
    "${DATA_OPTS[@]}" "${INIT[@]}" --epochs "$EPOCHS" --ema "$EMA" >"$WS/finetune.log" 2>&1
stamp "fine-tuning: exit $?, $EPOCHS epochs; $(grep -o 'images/s, data wait [0-9]*%' "$WS/finetune.log" | tail -1)"
weights_of finetune model "$WS/finetune_ema.weights"
weights_of finetune training_model "$WS/finetune_raw.weights"
stamp done
