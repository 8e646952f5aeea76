#!/usr/bin/env bash
# The benchmark suite (not part of the tests): every model's forward pass on both backends,
# end-to-end folder prediction per task, then the performance goals, each as a ratio.
#
#   bash scripts/benchmark.sh [OUT [PYTEST ARGS...]]   (default OUT: runs/benchmarks)
#   bash scripts/benchmark.sh --goals                  (the goals only, about 10 minutes)
#
# Writes OUT/suite.json (pytest-benchmark), OUT/table.md and OUT/goals/goals.json; the goals
# run rewrites the goals sections of docs/performance.md and README.md. Run it on an
# otherwise idle machine: the numbers are only as quiet as the machine (the load average
# is recorded with them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
. .venv/bin/activate
if [ "${1:-}" = "--goals" ]; then
  exec python benchmarks/goals.py --out runs/goals --doc docs/performance.md --readme README.md
fi
out="${1:-runs/benchmarks}"
shift || true
mkdir -p "$out"
python -m pytest benchmarks -q -p no:cacheprovider --benchmark-enable \
    --benchmark-json "$out/suite.json" -o addopts="-ra" "$@"
python benchmarks/table.py "$out/suite.json" | tee "$out/table.md"
python benchmarks/goals.py --out "$out/goals" --doc docs/performance.md --readme README.md \
    --json > /dev/null
cat "$out/goals/goals.md"
