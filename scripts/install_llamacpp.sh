#!/usr/bin/env bash
# Build and install llama-cpp-python (serve_backend llama.cpp, bench generate) into .venv, with ggml's
# CPU flags chosen from /proc/cpuinfo. About 4 minutes on 2 idle cores (no CPU wheel on PyPI).
#   bash scripts/install_llamacpp.sh            # build and install
#   DRY_RUN=1 bash scripts/install_llamacpp.sh  # print the CMAKE_ARGS only
# A CPU without amx_int8 gets GGML_NATIVE=ON (everything it has). On one with amx_int8 (Intel Sapphire
# Rapids and later) the native build compiles ggml's AMX int8 kernels, and that build segfaulted in
# ggml_backend_amx_mul_mat on the first decode of a Q4_K_M Gemma 3 here: there the AVX / AVX-512 flags
# the CPU has are listed one by one with AMX off.
set -euo pipefail
cd "$(dirname "$0")/.."
CPUINFO="${CPUINFO:-/proc/cpuinfo}"
VERSION="${LLAMACPP_VERSION:-0.3.36}"
flags=" $( (grep -m1 '^flags' "$CPUINFO" 2>/dev/null || true) | cut -d: -f2) "
has() { [[ "$flags" == *" $1 "* ]]; }
args="-DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF"
if has amx_int8; then
  args="$args -DGGML_NATIVE=OFF"
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx512f:AVX512 avx512vbmi:AVX512_VBMI \
              avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    has "${pair%%:*}" && args="$args -DGGML_${pair#*:}=ON"
  done
  args="$args -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
else
  args="$args -DGGML_NATIVE=ON"
fi
echo "CMAKE_ARGS=\"$args\""
[ "${DRY_RUN:-0}" = "1" ] && exit 0
# shellcheck disable=SC1091
[ -f .venv/bin/activate ] && . .venv/bin/activate
pip uninstall -q -y llama-cpp-python >/dev/null 2>&1 || true
# --no-cache-dir: pip's wheel cache would otherwise hand back an earlier build with other flags
CMAKE_ARGS="$args" pip install --no-cache-dir "llama-cpp-python==$VERSION"
python -c "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
