#!/usr/bin/env python3
"""Times one cold NVRTC compile of a CUDA source with tlc's options
(runtime/cuda/nvrtc.cpp: --gpu-architecture=ARCH --std=c++17 -default-device).

Usage: tools/nvrtc-time.py KERNELS.cu [ARCH]   (ARCH defaults to sm_90)
KERNELS.cu comes from `tlc compile M.mlir -o M.tlx --dump-kernels DIR`.
Needs libnvrtc (no GPU)."""
import ctypes
import resource
import sys
import time

if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
path, arch = sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "sm_90"
try:
    src = open(path, "rb").read()
except OSError as e:
    sys.exit(f"nvrtc-time: {path}: {e.strerror}")
try:
    lib = ctypes.CDLL("libnvrtc.so.13")
except OSError:
    lib = ctypes.CDLL("libnvrtc.so")
prog = ctypes.c_void_p()
if lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"kernels.cu", 0, None, None) != 0:
    sys.exit("nvrtc-time: nvrtcCreateProgram failed")
opts = (ctypes.c_char_p * 3)(f"--gpu-architecture={arch}".encode(), b"--std=c++17", b"-default-device")
wall, cpu = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
status = lib.nvrtcCompileProgram(prog, 3, opts)
wall, cpu = time.time() - wall, resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
size = ctypes.c_size_t()
lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
print(f"{path}: {src.count(b'__global__')} kernels, {arch}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
      f"cubin {size.value:,} bytes")
sys.exit(1 if status else 0)
