#!/usr/bin/env bash
# The open-vocabulary demo model (issue #23) in one timed run, for a machine with a GPU and many cores:
# synthesise training chunks for GEN_SECONDS, train a fresh model until TOTAL_SECONDS after the start, package it.
#
#   bash recipes/demo/open_vocab.sh OUT_DIR
#
# Environment (defaults in brackets): PY [.venv/bin/python], DEVICE [cuda], JOBS [all cores], GEN_SECONDS [150],
# TOTAL_SECONDS [540], CHUNK [10000 clips], WORK [exp/open_vocab], INIT [exp/open_vocab_init: the tokenizer and
# am.mvn that run.sh's stage 9 makes], BATCH_FRAMES [60000], LR [1.5e-3].
# Each chunk is a corpus of its own seed with 200 random espeak-ng voices of its own, so more time means more voices
# as well as more sentences. OUT_DIR receives the fp16 release (model.py, config, tokenizer, am.mvn, model.pt), the
# training curve (train_history.json) and run.json (chunks, clips, rows, seconds per phase).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: bash recipes/demo/open_vocab.sh OUT_DIR}
py=${PY:-.venv/bin/python}
device=${DEVICE:-cuda}
jobs=${JOBS:-$(nproc)}
gen_seconds=${GEN_SECONDS:-150}
total=${TOTAL_SECONDS:-540}
chunk=${CHUNK:-10000}
work=${WORK:-exp/open_vocab}
init=${INIT:-exp/open_vocab_init}
encoder_conf='{"output_size": 256, "attention_heads": 4, "linear_units": 1024, "num_blocks": 12, "tp_blocks": 2}'
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p "$work" "$out"

# 1. Training audio: open-vocabulary text (70 % of speech clips), warped and random voices, word-by-word speech
#    with pauses (10 %), every event of the extended table, rooms and noise. Chunk 0 also writes the validation split.
k=0
while [ "$k" -eq 0 ] || [ "$(elapsed)" -lt "$gen_seconds" ]; do
  n_val=$([ "$k" -eq 0 ] && echo 400 || echo 0)
  $py -m sensevoice.training.data --out "$work/chunk$k" --n-train "$chunk" --n-val "$n_val" --n-test 0 \
      --seed $((100 + k)) --warp 0.12 --random-voices 200 --open-text 0.7 --pauses 0.1 --events extended \
      --acoustics wide --jobs "$jobs"
  k=$((k + 1))
done
cat "$work"/chunk*/train.jsonl > "$work/train.jsonl"
generated=$(elapsed)

# 2. A fresh model (random weights) with the tokenizer and am.mvn made beforehand, trained until the deadline.
$py -m sensevoice.training.recipe init --tokenizer "$init/sensevoice.bpe.model" --cmvn "$init/am.mvn" \
    --out "$work/init" --encoder-conf "$encoder_conf" --seed 0
budget=$(( total - $(elapsed) - 30 ))  # 30 s left for the last validation and packaging
$py -m sensevoice.training.train --init "$work/init" --train "$work/train.jsonl" --val "$work/chunk0/val.jsonl" \
    --out "$work/run" --device "$device" --precision bf16 --batch-frames "${BATCH_FRAMES:-60000}" \
    --lr "${LR:-1.5e-3}" --warmup 400 --dropout 0.1 --specaug-conf '{"apply_time_mask": false}' \
    --max-steps 1000000 --time-budget "$budget" --val-every 1000000 --save-every 1000 --seed 0 \
    --feature-jobs "$jobs" --features-on-device --no-feature-cache
trained=$(elapsed)

# 3. The release.
$py -m sensevoice.training.recipe package --model "$work/run" --out "$out"
cp "$work/run/train_history.json" "$out/"
$py - "$work" "$out/run.json" "$k" "$generated" "$trained" "$(elapsed)" <<'EOF'
import json, sys
from pathlib import Path
work, path, chunks, generated, trained, total = sys.argv[1:]
rows = sum(1 for _ in open(Path(work) / "train.jsonl", encoding="utf-8"))
clips = sum(json.loads((Path(work) / f"chunk{k}" / "corpus.json").read_text())["clips"]["train"] for k in range(int(chunks)))
Path(path).write_text(json.dumps({"chunks": int(chunks), "train_clips": clips, "train_rows": rows,
                                  "seconds": {"generate": int(generated), "train_done": int(trained), "all": int(total)}},
                                 indent=2) + "\n")
print(Path(path).read_text())
EOF
