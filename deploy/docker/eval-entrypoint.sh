#!/bin/sh
# Entrypoint of the evaluation image.
# - Dagster's Kubernetes executor / run launcher / Pipes pass a whole command as container args
#   ("dagster api execute_step ...", "python ..."): run it unchanged.
# - Anything else (no args, or runner flags) goes to the vLLM evaluation runner.
set -e
case "${1:-}" in
  dagster|dagster-*|python|python3|sh|bash|/*) exec "$@" ;;
esac
exec python -m dagster_project.evaluation.vllm_runner "$@"
