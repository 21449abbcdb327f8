#!/usr/bin/env bash
# One device run (not a test): Triton kernel vs eager on CUDA (fp16/bf16/fp32, masks, hard cases, direct
# launches), torch.compile and autograd with PLADIS, the kernel's launch configurations and pass counts, host time per call, and both benchmarks
# (the UNet forward both as a CUDA graph and Python-issued). Needs the carried wheels
# in .whl/ (diffusers, entmax, importlib_metadata); .gpu/old_triton_kernel.py, if carried, is timed too.
#   run tool:  bash tools/gpu_check.sh [--quick]      (carry: [".whl", ".gpu"])
# --quick: kernel check with fewer dtypes; the default kernel configuration only; no attention benchmark
# (the configurations run times the kernel per call); UNet with the literal reference at α = 1.5 only.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || echo "wheel install failed: UNet benchmark will be skipped"
export PYTHONPATH=/tmp/site:$PWD/packages/pladis/src:$PWD/registry/src:$PWD/tools
O=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
if [ "${1:-}" = "--quick" ]; then
  KC="--quick"; BC="--default-only"; BA=""; BU="--literal-alphas 1.5 --reps 12"
else
  KC=""; BC=""; BA="--backends eager triton auto --reps 20"; BU="--literal-alphas 1.5 2.0 --reps 15"
fi
OLD=""; [ -f .gpu/old_triton_kernel.py ] && OLD="--old .gpu/old_triton_kernel.py"
echo "== kernel check"
timeout 150 python3 tools/gpu_kernel_check.py $KC 2>&1 | tee $O/kernel_check.txt
echo "== torch.compile and autograd on CUDA"
timeout 240 python3 tools/gpu_compile_check.py 2>&1 | tee $O/compile_check.txt
echo "== kernel configurations and passes"
timeout 150 python3 tools/bench_triton_configs.py $OLD $BC 2>&1 | tee $O/triton_configs.txt
echo "== host time per call"
timeout 120 python3 tools/bench_host_overhead.py 2>&1 | tee $O/host_overhead.txt
if [ -n "$BA" ]; then
  echo "== attention benchmark"
  timeout 60 python3 tools/bench_attention.py --device cuda --dtype float16 $BA 2>&1 | tee $O/bench_attention_cuda.txt
fi
echo "== unet benchmark, CUDA graphs (GPU time end to end)"
timeout 200 python3 tools/bench_unet.py --arch sdxl --device cuda --cuda-graph --literal-alphas 1.5 --reps 15 2>&1 | tee $O/bench_unet_graph.txt
echo "== unet benchmark, Python-issued"
timeout 150 python3 tools/bench_unet.py --arch sdxl --device cuda $BU 2>&1 | tee $O/bench_unet_cuda.txt
