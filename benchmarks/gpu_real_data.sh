#!/usr/bin/env bash
# Real-data training runs on a GPU machine (ICDAR 2015), in two phases that fit a short GPU lease.
#
#   DATA_PARTS="a/ b/" bash benchmarks/gpu_real_data.sh pretrain   # synthetic pre-trainings, synthetic-only F
#   DATA_PARTS="a/ b/" bash benchmarks/gpu_real_data.sh finetune   # fine-tunes on the 900 photos, F curves
#
# DATA_PARTS: folders in the DB layout (train_images/, train_gts/) whose union is the ICDAR 2015 training set
# (the set may travel in parts); SPLIT_DIR holds split_train_list.txt / split_val_list.txt from
# `python -m tools.split_dataset`. Everything is written under $LOG_DIR (logs, metrics.jsonl, eval output).
#
# Two kinds of run share the machine:
# - CPU-recipe equivalents: the CPU experiments (experiments/synthetic/pretrain_cpu.yaml,
#   experiments/icdar2015/ic15_resnet18_cpu.yaml) with their own iteration counts (N_PRETRAIN iterations,
#   RECIPE_EPOCHS epochs: the files' own are 2700 iterations and 24 epochs, about 50 + 72 minutes on 2 cores with
#   --amp --channels_last), fp32: the same training as on a CPU, only faster, so that the generator comparison,
#   its ablations and the recipe variants can be measured side by side;
# - the GPU recipe: deformable ResNet-18, AMP, 640x640 batch 16 (pre-training on the 'photo' generator, then
#   the 900 photos from that pre-training and from scratch, GPU_FT_EPOCHS epochs each, side by side), with
#   images/s, the share of step time spent waiting for data, and GPU utilisation (nvidia-smi) logged. A run cut
#   by JOB_TIMEOUT saves model_latest (SIGTERM), which is then evaluated.
set -uo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:?pretrain or finetune}
LOG_DIR=${LOG_DIR:-gpu_logs}
WS=${WS:-workspace/gpu}
DEVICE=${DEVICE:-cuda}
SPLIT_DIR=${SPLIT_DIR:?folder with split_train_list.txt and split_val_list.txt}
N_PRETRAIN=${N_PRETRAIN:-500}
RECIPE_EPOCHS=${RECIPE_EPOCHS:-24}
N_GPU_PRETRAIN=${N_GPU_PRETRAIN:-400}   # 0: no GPU pre-training (nor its fine-tunes)
PRETRAIN_VARIANTS=${PRETRAIN_VARIANTS-photo easy no_backgrounds no_degradation}
RECIPE_VARIANTS=${RECIPE_VARIANTS-photo easy photo_lr2e-3 photo_crop320_b16}
GPU_FT_EPOCHS=${GPU_FT_EPOCHS:-10}   # 0: no GPU fine-tunes
JOB_TIMEOUT=${JOB_TIMEOUT:-300}
W=${WORKERS:-2}
GW=${GPU_WORKERS:-5}
AMP=${AMP---amp}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$LOG_DIR" "$WS"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

# ----- the dataset: the union of the parts, hard-linked (or copied) into one folder whose name says icdar (the
# reader's ICDAR 2015 quadrilateral format is chosen by the folder name; it refuses links leading outside it)
DATA=$WS/icdar2015
mkdir -p "$DATA/train_images" "$DATA/train_gts"
for part in ${DATA_PARTS:-}; do
    [ -d "$part/train_images" ] || continue
    for sub in train_images train_gts; do
        cp -lf "$part/$sub"/* "$DATA/$sub/" 2>/dev/null || cp -f "$part/$sub"/* "$DATA/$sub/"
    done
done
: >"$WS/train_list.txt"
while read -r name; do [ -e "$DATA/train_images/$name" ] && echo "$name" >>"$WS/train_list.txt"; done \
    <"$SPLIT_DIR/split_train_list.txt"
cp "$SPLIT_DIR/split_val_list.txt" "$WS/val_list.txt"
stamp "data: $(wc -l <"$WS/train_list.txt") training photos, $(wc -l <"$WS/val_list.txt") validation photos"
DATA_OPTS=(--opt "train_data.data_dir=['$DATA/']" --opt "train_data.data_list=['$WS/train_list.txt']"
           --opt "validate_data.data_dir=['$DATA/']" --opt "validate_data.data_list=['$WS/val_list.txt']")
VAL_OPTS=(--opt "validate_data.data_dir=['$DATA/']" --opt "validate_data.data_list=['$WS/val_list.txt']")
RECIPE=experiments/icdar2015/ic15_resnet18_cpu.yaml
GPU_RECIPE=experiments/icdar2015/ic15_resnet18_deform_gpu.yaml

train() {  # train NAME EXPERIMENT [train.py flags...]: one run, its log and metrics under $LOG_DIR
    local name=$1 exp=$2
    shift 2
    timeout "$JOB_TIMEOUT" python3 train.py "$exp" --name "$name" --workspace_root "$WS" --device "$DEVICE" \
        --no-progress "$@" >"$LOG_DIR/train_$name.log" 2>&1
    local rc=$?
    cp "$WS/$name/metrics.jsonl" "$LOG_DIR/metrics_$name.jsonl" 2>/dev/null
    stamp "train $name: exit $rc"
}

evaluate() {  # evaluate NAME EXPERIMENT CHECKPOINT: P / R / F on the validation photos, thresh and box_thresh swept
    local name=$1 exp=$2 checkpoint=$3
    [ -f "$checkpoint" ] || checkpoint=$(dirname "$checkpoint")/model_latest
    if [ ! -f "$checkpoint" ]; then stamp "eval $name: no checkpoint"; return; fi
    timeout "${EVAL_TIMEOUT:-$JOB_TIMEOUT}" python3 eval.py "$exp" --resume "$checkpoint" --device "$DEVICE" \
        --thresh_sweep 0.3:0.6:0.1 --box_thresh_sweep 0.3:0.7:0.05 --no-results --num_workers 2 "${VAL_OPTS[@]}" \
        >"$LOG_DIR/eval_$name.log" 2>&1
    stamp "eval $name: exit $? $(grep -iE 'best|fmeasure' "$LOG_DIR/eval_$name.log" | tail -1)"
}

weights_of() {  # weights_of NAME: the final weights of a run (else its latest), alone (small to carry back)
    local checkpoint=$WS/$1/model/final
    [ -f "$checkpoint" ] || checkpoint=$WS/$1/model/model_latest
    python3 -c "import torch, sys; c = torch.load(sys.argv[1], weights_only=True); torch.save(c['model'], sys.argv[2])" \
        "$checkpoint" "$WS/$1.weights" && echo "$WS/$1.weights"
}

gpu_monitor() {  # utilisation every second while the GPU recipe runs
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 1 >"$LOG_DIR/$1" 2>&1 &
    echo $!
}

case "$PHASE" in
pretrain)
    # the CPU pre-training of each generator variant (batch 8 x N_PRETRAIN iterations = one epoch, so the learning
    # rate decays to the end as in the CPU run)
    pre=(--max_iterations "$N_PRETRAIN" --num_workers "$W" --opt "train_data.num_samples=$((N_PRETRAIN * 8))"
         --opt Experiment.validation.interval=$((N_PRETRAIN / 2)) --opt Experiment.train.model_saver.save_interval=100000)
    for variant in $PRETRAIN_VARIANTS; do
        case $variant in
        # each variant sets options over the file's (train_data.options.KEY: the file's extra_fonts: false stays)
        photo) options=() ;;  # pretrain_cpu.yaml as it is: 'photo' without the extra Hershey faces
        easy) options=(--opt train_data.difficulty=easy) ;;  # the generator before the photo preset (the quick start's)
        no_backgrounds) options=(--opt "train_data.options.backgrounds=[paper, ruled, gradient, cluttered]") ;;
        no_photos) options=(--opt "train_data.options.backgrounds=[texture, facade, packaging, cluttered, paper,
                            gradient]") ;;  # the scikit-image photos left out, every other background kept
        no_layout) options=(--opt train_data.options.surface_prob=0 --opt train_data.options.panel_prob=0
                            --opt train_data.options.multiline_prob=0) ;;
        no_degradation) options=(--opt train_data.options.lighting=0 --opt train_data.options.shadow_prob=0
                                 --opt train_data.options.defocus_prob=0 --opt train_data.options.motion_blur_prob=0
                                 --opt train_data.options.jpeg_prob=0) ;;
        fonts) options=(--opt train_data.options.extra_fonts=true) ;;  # the full 'photo' preset, extra faces included
        clutter) options=(--opt "train_data.options.clutter=[2, 8]") ;;  # unlabelled pictograms, patterns, shelves
        word_space) options=(--opt "train_data.options.word_space=[0.3, 0.8]") ;;  # real gaps between words
        anneal) options=(--opt Experiment.train.scheduler.learning_rate.to_zero=True) ;;  # the rate decays to 0
        *) echo "unknown pre-training variant $variant"; continue ;;
        esac
        train "pre_$variant" experiments/synthetic/pretrain_cpu.yaml "${pre[@]}" "${options[@]}" &
    done
    monitor=$(gpu_monitor gpu_util_pretrain.csv)
    if [ "$N_GPU_PRETRAIN" -gt 0 ]; then
        train gpu_pre_photo experiments/synthetic/pretrain_gpu.yaml $AMP --max_iterations "$N_GPU_PRETRAIN" \
            --num_workers "$GW" --opt "train_data.num_samples=$((N_GPU_PRETRAIN * 16))" --epochs 1 --no-validate &
    fi
    wait
    kill "$monitor" 2>/dev/null
    for variant in $PRETRAIN_VARIANTS; do
        evaluate "pre_$variant" "$RECIPE" "$WS/pre_$variant/model/final" &
    done
    [ "$N_GPU_PRETRAIN" -gt 0 ] && evaluate gpu_pre_photo "$GPU_RECIPE" "$WS/gpu_pre_photo/model/final" &
    wait
    for name in pre_photo pre_easy gpu_pre_photo; do weights_of "$name" >/dev/null 2>&1; done
    if [ -n "${WEIGHTS_OUT:-}" ]; then  # pre_photo's weights in float16 parts of at most 15 MB (file-size limits)
        python3 - "$WS/pre_photo.weights" "$WEIGHTS_OUT" <<'EOF'
import os, sys, torch
state = torch.load(sys.argv[1], weights_only=True)
parts, part, size = [], {}, 0
for key, value in state.items():
    value = value.half() if value.is_floating_point() else value
    nbytes = value.numel() * value.element_size()
    if part and size + nbytes > 14e6:
        parts.append(part)
        part, size = {}, 0
    part[key], size = value, size + nbytes
parts.append(part)
os.makedirs(sys.argv[2], exist_ok=True)
for index, part in enumerate(parts):
    torch.save(part, os.path.join(sys.argv[2], f'pre_photo_fp16.{index}'))
print(f'{len(parts)} parts of the pre_photo weights in {sys.argv[2]}')
EOF
    fi
    ;;
finetune)
    # the CPU recipe (RECIPE_EPOCHS epochs of the 900 photos, about one hour on 2 cores), validated four times
    photos=$(wc -l <"$WS/train_list.txt")
    recipe() {  # recipe NAME INIT [flags]: INIT '' is a random initialisation
        local name=$1 init=$2 batch=${BATCH:-8}
        shift 2
        local iterations=$(( RECIPE_EPOCHS * (photos / batch) ))
        local resume=()
        [ -n "$init" ] && resume=(--init_weights "$init")
        train "$name" "$RECIPE" "${DATA_OPTS[@]}" "${resume[@]}" --num_workers "$W" --epochs "$RECIPE_EPOCHS" \
            --opt Experiment.validation.interval=$((iterations / RECIPE_EPOCHS)) \
            --opt Experiment.train.model_saver.save_interval=100000 "$@"
    }
    for variant in $RECIPE_VARIANTS; do
        case $variant in
        photo) recipe rec_photo "$WS/pre_photo.weights" & ;;
        easy) recipe rec_easy "$WS/pre_easy.weights" & ;;
        scratch) recipe rec_scratch '' & ;;
        photo_lr2e-3) recipe rec_photo_lr2e-3 "$WS/pre_photo.weights" --lr 0.002 & ;;
        photo_scale3) recipe rec_photo_scale3 "$WS/pre_photo.weights" \
                          --opt "train_data.processes.0.augmenter_args.2=['Resize', [0.5, 3.0]]" & ;;
        photo_crop320_b16) BATCH=16 recipe rec_photo_crop320_b16 "$WS/pre_photo.weights" --batch_size 16 \
                               --opt "train_data.processes.0.size=[320, 320]" & ;;
        *) echo "unknown recipe variant $variant" ;;
        esac
    done
    wait
    # the GPU recipe: deformable ResNet-18, AMP, from the GPU pre-training and from scratch, side by side
    if [ "$GPU_FT_EPOCHS" -gt 0 ]; then
        monitor=$(gpu_monitor gpu_util_finetune.csv)
        gpu_ft=(--num_workers "$GW" $AMP --epochs "$GPU_FT_EPOCHS"
                --opt Experiment.validation.interval=$((GPU_FT_EPOCHS * (photos / 16) / 4))
                --opt Experiment.train.model_saver.save_interval=100000)
        train gpu_ft_pretrained "$GPU_RECIPE" "${DATA_OPTS[@]}" "${gpu_ft[@]}" \
            --init_weights "$WS/gpu_pre_photo.weights" &
        train gpu_ft_scratch "$GPU_RECIPE" "${DATA_OPTS[@]}" "${gpu_ft[@]}" &
        wait
        kill "$monitor" 2>/dev/null
        evaluate gpu_ft_pretrained "$GPU_RECIPE" "$WS/gpu_ft_pretrained/model/final" &
        evaluate gpu_ft_scratch "$GPU_RECIPE" "$WS/gpu_ft_scratch/model/final" &
        wait
    fi
    ;;
esac
stamp "phase $PHASE done"
