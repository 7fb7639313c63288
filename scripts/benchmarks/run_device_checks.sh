#!/usr/bin/env bash
# GPU checks of issue 11 (training at hardware speed), in one command of about 8 minutes on one H200.
#
# The device machine has torch 2.11, accelerate, tensorboard and the rest, but not diffusers or datasets: carry their
# wheels. Once, from the repository root of the checkout the device tool sends (not committed: .whl/ is ignored):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl diffusers==0.42.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
#
# Then one call of the device tool (run), with carry [".whl"] and timeout_s 600:
#
#   bash scripts/benchmarks/run_device_checks.sh
#
# It writes into $OUT (which comes back): the training report (training-cuda.md, its charts and index) and the full
# log (device-checks.log); copy training-cuda*.{md,png} into docs/benchmarks/ and rerun
# `python -c "import sys; sys.path.insert(0, 'scripts/benchmarks'); import benchmark_utils; benchmark_utils.write_index('docs')"`
# to refresh docs/benchmarks.md. The benchmark rewrites its report after every measured group, so a run stopped by
# the time limit still returns what it measured.
#
# Steps (each prints everything it measures):
#   1. The environment: GPU, torch, installed wheels.
#   2. Correctness on the GPU: scripts/train.py for 30 updates with the data held on the device, --compile, bf16,
#      random flips, a checkpoint and a resume to 40 updates (both must exit 0 and the resumed run must say so).
#   3. benchmark_training.py --device cuda: the MNIST and CIFAR-10 presets of MODEL_PRESETS at batch 64, 256 and 1024:
#      scripts/train.py --compile beside the bare compiled loop and the notebook loop, with model FLOPs utilisation at
#      989 TFLOP/s (H100/H200 SXM dense bf16), a profile of the compiled bare loop at batch 1024, and 10,000 samples
#      with DPM-Solver++ 20 steps, eager and compiled.
set -uo pipefail
OUT=${OUT:-/tmp/device-checks}
mkdir -p "$OUT"
exec > >(tee "$OUT/device-checks.log") 2>&1
START=$SECONDS

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "Carry the wheels in .whl (see the top of this script)."; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== 1. environment"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c "import torch, diffusers, datasets, accelerate; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__, 'cuda', torch.cuda.is_available())" || exit 1

echo "== 2. scripts/train.py on the GPU: data on the device, --compile, checkpoint, resume ($((SECONDS - START)) s)"
RUN=/tmp/device-train
TRAIN=(python3 -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision bf16
  --dynamo_backend no scripts/train.py --output_dir "$RUN" --data_on_device always --compile --random_flip
  --checkpointing_steps 30 --logging_steps 10 --eval_num_images 0 --ddpm_num_inference_steps 20 --train_batch_size 256)
timeout 150 "${TRAIN[@]}" --max_train_steps 30 || echo "CHECK FAILED: training on the GPU"
timeout 120 "${TRAIN[@]}" --max_train_steps 40 --resume_from_checkpoint latest | tee "$OUT/resume.log" | tail -n 5
grep -q "Resuming from checkpoint" "$OUT/resume.log" && test -f "$RUN/model_index.json" \
  && echo "CHECK PASSED: GPU training, checkpoint and resume" || echo "CHECK FAILED: resume on the GPU"
rm -f "$OUT/resume.log"

echo "== 3. benchmark_training.py --device cuda ($((SECONDS - START)) s)"
REMAINING=$((540 - (SECONDS - START)))
timeout "$REMAINING" python3 scripts/benchmarks/benchmark_training.py --device cuda --output_dir "$OUT" \
  --num_steps 20 --train_script_steps 120 --train_script_logging_steps 20 --profile_batch_size 1024 \
  || echo "benchmark stopped (exit $?): the report holds what was measured before"
cat "$OUT"/benchmarks/training-cuda.md
echo "== done in $((SECONDS - START)) s"
