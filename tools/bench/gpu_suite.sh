#!/usr/bin/env bash
# Run the benchmark suite on a CUDA machine that has MLX's CUDA build, PyTorch and transformers,
# with the packages on PYTHONPATH (no installation needed). Each benchmark writes a JSON file and
# a log into OUT; a failing benchmark does not stop the others.
#
#   tools/bench/gpu_suite.sh PHASE OUT [DATA_DIR] [MINILM_DIR]
#
# PHASE: speed   encoder inference, training step (+ memory), M2-BERT, quantization
#        glue    GLUE parity, mlxbert and PyTorch, one task after the other (GLUE_TASKS,
#                GLUE_SEEDS override the defaults)
#        kaggle  5-fold CV of the three Kaggle presets
#        like    like for like, each side in its own process: encoder inference (bf16, and
#                fp32 with TF32 on both sides and strict on both), the bf16 training step,
#                and the fused residual + LayerNorm kernel experiment (gpu_fused.py)
#        jobs    user-level jobs (jobs.py: embed, predict, fine-tuning epoch), fp32 with TF32
#                on both sides
# DATA_DIR holds glue/ and kaggle/ as in the data sets' usual layout; MINILM_DIR the
# all-MiniLM-L6-v2 files.
set -uo pipefail
cd "$(dirname "$0")/../.."
phase=$1 out=$2 data=${3:-../shared/data} minilm=${4:-}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
export PYTHONPATH=$(ls -d "$PWD"/packages/*/src | paste -sd:)${PYTHONPATH:+:$PYTHONPATH}
export MLXBERT_PLUGINS=mlxbert_m2.registry:ARCHITECTURE

run() {  # run NAME TIMEOUT COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date +%T))"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  echo "=== $name: exit $? ($(date +%T))"
  tail -n 25 "$out/$name.log"
}

case $phase in
  speed)
    run encoder 300 python3 tools/bench/encoder.py --device gpu --dtypes bfloat16,float32 \
      --grid 128x128,32x512 --json "$out/encoder.json"
    run train 300 python3 tools/bench/train.py --device gpu --models base,minilm --memory \
      --json "$out/train.json"
    run m2 300 python3 tools/bench/m2.py --device gpu --lengths 512 2048 4096 8192 \
      --dtypes bfloat16,float32 --json "$out/m2.json"
    run quant 200 python3 tools/bench/quant.py --device gpu ${minilm:+--model "$minilm"} \
      --json "$out/quant.json"
    ;;
  glue)
    for task in ${GLUE_TASKS:-sst2 rte mrpc stsb cola}; do
      run "glue_$task" "${GLUE_TIMEOUT:-280}" python3 tools/bench/glue_parity.py --device gpu \
        --data-dir "$data/glue" ${minilm:+--model-dir "$minilm"} --tasks "$task" \
        --seeds "${GLUE_SEEDS:-1}" --quiet --json "$out/glue_$task.json"
    done
    ;;
  kaggle)
    run kaggle 560 python3 tools/bench/kaggle.py --device gpu --data-dir "$data/kaggle" \
      ${minilm:+--model "$minilm"} --output-dir /tmp/kaggle-runs --json "$out/kaggle.json"
    ;;
  like)
    run isolated_bf16 300 python3 tools/bench/isolated.py encoder --device gpu \
      --models bert-base --grid 128x128,32x512 --dtypes bfloat16 --runs 2 \
      --json "$out/isolated_bf16.json"
    run isolated_fp32 300 python3 tools/bench/isolated.py encoder --device gpu \
      --models bert-base --grid 128x128,32x512 --dtypes float32 --fp32-mode both --runs 1 \
      --json "$out/isolated_fp32.json"
    run isolated_train 240 python3 tools/bench/isolated.py train --device gpu \
      --models bert-base --grid 32x128,64x128 --runs 1 --json "$out/isolated_train.json"
    run fused 150 python3 tools/bench/gpu_fused.py --json "$out/fused.json"
    ;;
  jobs)
    run jobs 560 python3 tools/bench/jobs.py --device gpu --data "$data" ${minilm:+--model "$minilm"} \
      --rounds 1 --fp32-mode tf32 --json "$out/jobs.json"
    ;;
  *) echo "unknown phase $phase (speed, glue, kaggle, like, jobs)"; exit 2 ;;
esac
