# Sourced by check.sh and bench.sh on the GPU machine: makes the shared
# libraries tlrun needs findable there. That machine is not Debian 12: the
# SentencePiece libraries tlrun links come from here (prepare.sh copies them
# into gpu-check/lib), and NCCL, NVRTC and cuBLASLt may live only in the CUDA
# toolkit's folder or in PyTorch's pip packages (nvidia/*/lib), which are not
# on the loader's path. Writes what it found to $OUT/env.txt.
gpu_lib_dirs="$PWD/gpu-check/lib"
for gpu_lib in libnccl.so.2 libnvrtc.so libcublasLt.so; do
  if ldconfig -p 2>/dev/null | grep -q "[[:space:]]$gpu_lib"; then continue; fi
  gpu_roots="/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib"
  for site in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    gpu_roots="$gpu_roots $site/nvidia"
  done
  for root in $gpu_roots; do
    found=$(find "$root" -name "$gpu_lib*" 2>/dev/null | head -n 1)
    if [ -n "$found" ]; then gpu_lib_dirs="$gpu_lib_dirs:$(dirname "$found")"; break; fi
  done
done
export LD_LIBRARY_PATH="$gpu_lib_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" GPU_ENV_DONE=1
{
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd build/tools/tlrun
} > "${OUT:-/tmp}/env.txt" 2>&1
if ldd build/tools/tlrun | grep -q "not found"; then
  echo "tlrun cannot start here:"; ldd build/tools/tlrun | grep "not found"
fi
