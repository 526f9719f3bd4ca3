#!/usr/bin/env bash
# The field guide's real-scale configuration, on a machine with several GPUs and network access to the Hub:
# Qwen2.5-Math-7B-Instruct writes the CoTs, Qwen2.5-72B-Instruct re-solves the problems the 7B gets wrong (mop-up),
# attention is captured from the 7B, and Qwen2-0.5B students are trained with DDP. Each stage runs unchanged under
# `accelerate launch` (or torchrun): generation, capture and training shard with split_dataset_by_node / Trainer.
#
#   NUM_GPUS=8 OUT=runs/gsm8k-7b bash examples/real_scale.sh
#
# Nothing here runs on the embedded CPU defaults; it is the documented recipe, not a test.
set -euo pipefail
NUM_GPUS=${NUM_GPUS:-8}
OUT=${OUT:-runs/gsm8k-7b}
LAUNCH="accelerate launch --num_processes ${NUM_GPUS} -m mycelium_run.cli"
STUDENT=Qwen/Qwen2-0.5B

# 1. GSM8K train from the Hub, teacher CoTs with the 72B mop-up (problems the 7B gets wrong go to the 72B).
#    For MATH: --source math500 (or any org/name with --hub_config / --hub_split).
${LAUNCH} build cot_traces --out "${OUT}" --source gsm8k --hub_split train \
  --cot_source teacher --teachers Qwen/Qwen2.5-Math-7B-Instruct Qwen/Qwen2.5-72B-Instruct \
  --max_new_tokens 1024 --batch_size 32 --test_fraction 0.1

# 2. Attention from the 7B, spans, IAF, regions, operations, student sets tokenized for the Qwen2 students.
${LAUNCH} build op_classes --out "${OUT}" --source gsm8k --hub_split train \
  --cot_source teacher --teachers Qwen/Qwen2.5-Math-7B-Instruct Qwen/Qwen2.5-72B-Instruct \
  --max_new_tokens 1024 --batch_size 32 --test_fraction 0.1 \
  --capture_teacher Qwen/Qwen2.5-Math-7B-Instruct --student_tokenizer "${STUDENT}"

# 3. Both students on Qwen2-0.5B (bf16, last-token pooling for the classifier), data parallel over the GPUs.
for student in tagger classifier; do
  ${LAUNCH} train "${student}" --run_dir "${OUT}" --config examples/configs/qwen2-0.5b-students.yaml
done

# 4. The students alone, no CoT, on the held-out slice (the teacher's accuracy is reported apart).
mycelium eval --models "${OUT}/models" --source gsm8k --hub_split train --test_fraction 0.1 --split test \
  --run_dir "${OUT}" --out "${OUT}/eval"

# 5. Self-improving rounds with teacher mop-up of the students' failures, then a dry-run release.
mycelium loop --run_dir "${OUT}" --max_rounds 3 --mop_up teacher --mop_up_teacher Qwen/Qwen2.5-Math-7B-Instruct
mycelium release "${OUT}" --repo YOUR_ORG/mycelium-gsm8k
