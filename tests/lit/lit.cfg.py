# lit configuration for tlc's FileCheck tests.
import os
import lit.formats
from lit.llvm import llvm_config

config.name = "tlc"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.tlc_binary_dir, "tests", "lit")
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "Inputs"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.tlc_tools_dir, append_path=True)
# Not %python: lit defines that as its own interpreter, which may lack numpy.
config.substitutions.append(("%system_python", config.python_executable))

# NVRTC (CUDA toolkit in the machine image) for tests that compile CUDA kernels.
import glob
if glob.glob("/usr/local/cuda/lib64/libnvrtc.so*"):
    config.available_features.add("nvrtc")
