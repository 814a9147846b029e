#!/usr/bin/env bash
# The CUDA checks of issues 17 and 18 in one run of a lent GPU machine. Not yet run on a GPU: how long each
# step takes there is unmeasured, so the steps come in order of worth and the log (tee'd to $OUT) comes back
# even when the call's timeout cuts the run short.
#
# The machine has python3 with torch, torchvision, numpy, pillow, click, rich, pyyaml, onnx, onnxruntime and
# pytest, no internet, and no ../shared: carry CIFAR-10 in a folder git ignores. Here, once:
#     mkdir -p .gpu && cp ../shared/datasets/cifar10-train-jpg.tar.gz .gpu/
# then, through the device tool: run(command="bash benchmarks/gpu_session.sh", carry=[".gpu"], timeout_s=590)
# Everything it prints also goes to $OUT/gpu_session.log; each step's JSON to $OUT (at most 8 files come back).
#
# It measures, each step timed by the wall clock and GPU memory sampled by nvidia-smi every 0.5 s:
#   1. the search's throughput at deployment size on CUDA (bf16), supernet step against the derived network's;
#   2. the three default commands on CIFAR-10 at 10% labels with --device cuda (search, finetune: their
#      defaults, so the GPU figure is comparable with docs/performance.md's CPU ones), and fast_cnn the same way;
#   3. the tests that train or search (they pick CUDA when it is there: --device auto).
# Locally, `GPU_SESSION_DEVICE=cpu GPU_SESSION_QUICK=1 bash benchmarks/gpu_session.sh` checks the script itself
# (not its figures) on tiny synthetic runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_session}
DEVICE=${GPU_SESSION_DEVICE:-cuda}
QUICK=${GPU_SESSION_QUICK:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_session.log") 2>&1
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
EDGENAS="$PY -m edgenas"
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }
timed() {  # timed NAME CMD...: runs CMD, prints its wall seconds and exit code
  local name=$1 t0=$SECONDS rc; shift
  "$@"; rc=$?
  echo "== $name: $((SECONDS - t0)) s, exit $rc" >&2
  return 0
}

stamp "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
nproc
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -lms 500 \
    > "$OUT/gpu_memory.csv" 2>/dev/null &
fi

if [ "$QUICK" = 1 ]; then
  DATA=(--data synthetic)
  SEARCH=(--target local --strategy darts --subset 96 --resolution 16 --channels 4 --cells 2 --epochs 2
          --batch-size 8)
  FINETUNE=(--epochs 2 --min-steps 0 --no-unlabelled --fraction 0.5)
  THROUGHPUT=(--steps 2 --warmup 1 --batch 16 --channels 8 --cells 3 --supernets sampled)
else
  root=/tmp/edgenas-data
  mkdir -p $root && tar -xzf .gpu/cifar10-train-jpg.tar.gz -C $root || { echo "carry .gpu with the tarball"; exit 2; }
  DATA=(--data imagefolder --data-root $root/cifar10-jpg/train)
  SEARCH=(--target local)
  FINETUNE=(--fraction 0.1)
  THROUGHPUT=(--batch 256 --steps 10 --warmup 3)
fi
AMP=(); [ "$DEVICE" = cuda ] && AMP=(--amp bf16)

stamp "1. search throughput on $DEVICE"
timed throughput $PY benchmarks/search_throughput.py --device "$DEVICE" "${AMP[@]}" --threads "$(nproc)" \
  "${THROUGHPUT[@]}"

stamp "2. the default commands on $DEVICE"
timed search $EDGENAS search "${DATA[@]}" "${SEARCH[@]}" --device "$DEVICE" --out "$OUT/run" --no-progress
timed finetune $EDGENAS finetune "$OUT/run" "${DATA[@]}" "${FINETUNE[@]}" --device "$DEVICE" --no-progress \
  --json > "$OUT/finetune_searched.json"
timed finetune_fast_cnn $EDGENAS finetune fast_cnn "${DATA[@]}" "${FINETUNE[@]}" --device "$DEVICE" \
  --out "$OUT/fast_cnn" --no-progress --json > "$OUT/finetune_fast_cnn.json"
for f in "$OUT"/finetune_*.json; do
  $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[1].split('/')[-1],
    {k: r.get(k) for k in ('final_acc', 'teacher_acc', 'params', 'macs', 'elapsed_s', 'device', 'amp')})" "$f" \
    || true
done

stamp "3. tests that train or search, on $DEVICE"
if [ "$QUICK" != 1 ]; then
  timed tests $PY -m pytest -q -x -p no:cacheprovider tests/search tests/train tests/evaluate tests/test_api.py \
    2>&1 | tail -15
fi
kill %1 2>/dev/null
if [ -s "$OUT/gpu_memory.csv" ]; then
  awk -F', ' '{gsub(/ MiB/, "", $2); if ($2 > m) m = $2} END {print "== peak GPU memory used:", m, "MiB"}' \
    "$OUT/gpu_memory.csv"
fi
cp "$OUT/run/arch.json" "$OUT/searched.arch.json" 2>/dev/null
rm -rf "$OUT/run" "$OUT/fast_cnn"  # only plain files two folders down come back, at most 8
stamp done
