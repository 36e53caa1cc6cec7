#!/usr/bin/env bash
# The shipped checkpoint's training recipe on one GPU: stages side by side in four timed phases.
#
#   scripts/train_gpu_128.sh DATA RUN        (DATA: a prepare-faces folder; RUN: a new run folder)
#
# phase 1: autoencoder | irn     phase 2: prior | irn (resumed)     phase 3: mask     phase 4: blend gate
# Before phase 4 the four stages are exported with the shipped file's fidelity mappings (ANCHOR, default
# "0.5 1.5" px of low-frequency anchoring; TSTAR, default "0.4 0.8"), and the gate is fitted to that file's
# restorations in RUN/gated (train --init-from), so the gate and the exported mappings agree.
# Minutes per phase come from P1, P2, P3, P4 (default 3, 2.5, 0.75, 0.75: 7 minutes of training; with each
# stage's start-up (about half a minute on this CPU) and the export, sized to end inside
# one 10-minute call of a lent GPU machine, whose session budget is 15 minutes with the machine's start).
# With OUT_DIR set, the exported file and the stages' logs are copied there (6 files at most).
# FaceNet (the identity loss and the mask stage) is used where faces.identity can load it; without
# it the IRN trains on L1 alone and the mask stage is skipped. CODEC_PROB=0 where PyAV is missing.
# Each stage logs to RUN/<stage>.log; the script stops at the first stage that fails.
# With INIT_FROM=FILE (an exported small_128 model, e.g. the shipped one) the run folder starts from that
# file's weights and every stage of phases 1-3 continues from there instead of starting afresh; the
# autoencoder's adversarial terms (a new discriminator) then start at once (DISC_START defaults to 0).
# IRN_ARGS adds options to both IRN runs, e.g. the adversarial IRN of model card sessions 25-26:
#   IRN_ARGS="--irn-adversarial --gan-weight 0.02 --feature-matching-weight 0.5 --disc-warmup 200"
set -euo pipefail
DATA=${1:?usage: train_gpu_128.sh DATA RUN}
RUN=${2:?usage: train_gpu_128.sh DATA RUN}
PY=${PYTHON:-python3}
P1=${P1:-3} P2=${P2:-2.5} P3=${P3:-0.75} P4=${P4:-0.75}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-32}
mkdir -p "$RUN"
ANCHOR=${ANCHOR:-0.5 1.5} TSTAR=${TSTAR:-0.4 0.8}
RUNDIR=$RUN
train() {  # train STAGE ARGS...  (in RUNDIR; output appended to RUN/STAGE.log)
    local stage=$1; shift
    $PY -m clrface_video train "$DATA" --stage "$stage" --run "$RUNDIR" --config small_128 --device "$DEVICE" \
        --codec-prob "${CODEC_PROB:-0.35}" --workers "${WORKERS:-6}" --log-every "${LOG_EVERY:-200}" "$@" \
        >>"$RUN/$stage.log" 2>&1
}
has_facenet() {
    [ "${FACENET:-1}" = 1 ] && $PY -c "from clrface_video.faces.identity import load_identity_encoder as f; f()" \
        >/dev/null 2>&1
}
identity_weight() {  # the IRN's identity-loss weight: 0.1 where FaceNet loads, else 0 (and say which)
    ID=0; has_facenet && ID=0.1
    echo "$(date -u +%T) irn identity weight $ID"
}
GO_ON=()  # --resume for the stages of phases 1-3 of a run started from INIT_FROM
if [ -n "${INIT_FROM:-}" ]; then
    echo "$(date -u +%T) run folder started from $INIT_FROM"
    train autoencoder --init-from "$INIT_FROM" --steps 1 --batch-size "$BATCH"  # seeds RUN, trains nothing
    GO_ON=(--resume)
    DISC_START=${DISC_START:-0}  # the file's decoder is GAN-tuned: L1 alone would blur it again
fi
echo "$(date -u +%T) phase 1: autoencoder | irn ($P1 min)"
identity_weight
train autoencoder "${GO_ON[@]}" --max-minutes "$P1" --batch-size "$BATCH" --lr 2e-4 \
    --disc-start "${DISC_START:-6000}" &
ae=$!
# shellcheck disable=SC2086  # IRN_ARGS is a list of options
train irn "${GO_ON[@]}" --max-minutes "$P1" --batch-size "$BATCH" --lr 4e-4 --identity-weight "$ID" ${IRN_ARGS:-} &
irn=$!
wait $ae; wait $irn
echo "$(date -u +%T) phase 2: prior | irn resumed ($P2 min)"
identity_weight
train prior "${GO_ON[@]}" --max-minutes "$P2" --batch-size "$((BATCH * 2))" --noise-draws 2 --lr 4e-4 &
prior=$!
# shellcheck disable=SC2086
train irn --resume --max-minutes "$P2" --batch-size "$BATCH" --lr 4e-4 --identity-weight "$ID" ${IRN_ARGS:-} &
irn=$!
wait $prior; wait $irn
if has_facenet; then
    echo "$(date -u +%T) phase 3: mask ($P3 min)"
    train mask "${GO_ON[@]}" --max-minutes "$P3" --batch-size 16
else
    echo "$(date -u +%T) phase 3 skipped: FaceNet not available (train the mask stage where it is)"
fi
echo "$(date -u +%T) phase 4: blend gate on the degraded face ($P4 min)"
# shellcheck disable=SC2086  # ANCHOR and TSTAR are two numbers each
$PY -m clrface_video export "$RUN" "$RUN/stages.safetensors" --fp32 --anchor-range $ANCHOR --t-star-range $TSTAR
RUNDIR=$RUN/gated
train gate --max-minutes "$P4" --batch-size "$BATCH" --gate-inputs degraded --init-from "$RUN/stages.safetensors"
$PY -m clrface_video export "$RUNDIR" "$RUN/clrface-128.safetensors"
if [ -n "${OUT_DIR:-}" ]; then
    mkdir -p "$OUT_DIR"
    cp "$RUN/clrface-128.safetensors" "$RUN"/*.log "$OUT_DIR"/
fi
echo "$(date -u +%T) done"
