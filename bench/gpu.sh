#!/usr/bin/env bash
# The JAX-only benchmarks on an accelerator host, in one call (under 5 minutes on one GPU), ending
# with one table. Needs JAX, flax, optax, orbax and OpenCV; no TensorFlow (none of these imports
# it). PyTorch figures appear where torch is installed and sees the GPU.
#
#   bash bench/gpu.sh            # logs in ${GPU_BENCH_LOGS:-/tmp/twostream_gpu_bench}
#   QUICK=1 bash bench/gpu.sh    # a smoke run (smaller batches, fewer iterations; also on a CPU)
#
# Parts: models forward / train step in bfloat16 beside PyTorch (bench_models.py), TV-L1 in JAX
# batched beside OpenCV (bench_tvl1.py), and the device-side view transform with the transfer it
# saves (bench_device_views.py).
set -uo pipefail
cd "$(dirname "$0")/.."
logs=${GPU_BENCH_LOGS:-/tmp/twostream_gpu_bench}
mkdir -p "$logs"
if [[ -n "${QUICK:-}" ]]; then
  models=(--models=resnet18 --batch=8 --iters=2)
  tvl1=(--batch-sizes 2 --opencv-pairs 1 --size 160x120)
  views=(--quick)
else
  models=(--models=resnet18,resnet50,cnn_m_2048 --batch=64 --iters=10 --dtype=bfloat16)
  tvl1=(--batch-sizes 8,32 --opencv-pairs 2)
  views=()
fi
status=0
run() {  # name, timeout seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" >&2
  if ! timeout "$limit" "$@" >"$logs/$name.log" 2>&1; then
    echo "!! $name failed or timed out (see $logs/$name.log)" >&2
    status=1
  fi
  tail -n 25 "$logs/$name.log" >&2
}
run models 130 python bench/bench_models.py "${models[@]}"
run models_flow 50 python bench/bench_models.py --models=cnn_m_2048 --channels=20 \
    "${models[@]:1}"
run tvl1 70 python bench/bench_tvl1.py "${tvl1[@]}"
run device_views 40 python bench/bench_device_views.py "${views[@]}"

python - "$logs" <<'EOF'
import os, re, sys
logs = sys.argv[1]
def lines(name):
  path = os.path.join(logs, name + '.log')
  return open(path).read().splitlines() if os.path.exists(path) else []
rows = []
for name, what in (('models', 'RGB 224x224x3'), ('models_flow', 'flow 224x224x20')):
  text = lines(name)
  head = next((l for l in text if l.startswith('JAX ')), '')
  for l in text:
    parts = l.split()
    if len(parts) == 8 and re.match(r'^[a-z_0-9]+$', parts[0]) and parts[1][0].isdigit():
      rows.append((f'{parts[0]} {what} fwd (img/s, JAX / torch)', f'{parts[1]} / {parts[2]}'))
      rows.append((f'{parts[0]} {what} train step (img/s, JAX / torch)', f'{parts[4]} / {parts[5]}'))
  if head:
    rows.append((f'  ({name} setting)', head.split(';')[0]))
for l in lines('tvl1'):
  if l.startswith('JAX B=') or l.startswith('OpenCV DualTVL1'):
    rows.append(('TV-L1 ' + l.split(':')[0], l.split(':', 1)[1].strip()))
for l in lines('device_views'):
  parts = l.split()
  if l.startswith(('temporal train', 'spatial train', 'eval (25 x 10)')):
    name = ' '.join(parts[:-5])
    rows.append((f'device views {name} (views/s)', parts[-5]))
    rows.append((f'  {name} transfer uint8 / float32 (MB, ms)',
                 f'{parts[-4]} MB {parts[-3]} ms / {parts[-2]} MB {parts[-1]} ms'))
  elif l.startswith('JAX '):
    rows.append(('device', l))
width = max([len(r[0]) for r in rows] + [10])
print('\n| benchmark | figure |\n| :-- | --: |')
for k, v in rows:
  print(f'| {k.ljust(width)} | {v} |')
EOF
exit $status
