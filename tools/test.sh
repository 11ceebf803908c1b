#!/usr/bin/env bash
# The project's test command.
#
# 1. Each package's own tests run in an environment holding only that package and its declared
#    dependencies (`uv run --exact --package`): this proves mlxbert-heads, -lora and -quant work
#    without mlxbert-core, and that no package imports past its dependencies.
# 2. The cross-package integration tests run in the full workspace environment.
#
# Usage: tools/test.sh [package-name ...]   (default: every package, then integration)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
  packages=(mlxbert-heads mlxbert-lora mlxbert-quant mlxbert-core mlxbert-m2 mlxbert-glue mlxbert-kaggle integration)
fi

envs="${MLXBERT_TEST_ENVS:-.venv-packages}"
status=0
for pkg in "${packages[@]}"; do
  echo "=== ${pkg}"
  start=$(date +%s)
  if [ "$pkg" = integration ]; then
    uv run --locked --all-packages pytest tests -q -p no:cacheprovider || status=1
  else
    UV_PROJECT_ENVIRONMENT="$envs/$pkg" \
      uv run --locked --exact --package "$pkg" pytest "packages/$pkg/tests" -q -p no:cacheprovider \
      || status=1
  fi
  echo "=== ${pkg}: $(( $(date +%s) - start )) s"
done
exit $status
