#!/usr/bin/env bash
# Creates (or updates) the Python venv with the Kubernetes schema validator
# used by harness/tests/deploy.rs. Idempotent: does nothing when the venv
# already has exactly these requirements installed.
#
#   deploy/tests/setup-venv.sh                  # venv at <workspace>/.venv-deploy
#   TEKUP_DEPLOY_VENV=/path/to/venv deploy/tests/setup-venv.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${TEKUP_DEPLOY_VENV:-$root/.venv-deploy}"
requirements="$here/requirements.txt"
stamp="$venv/.tekup-deploy-requirements.sha256"
python="${PYTHON:-python3}"

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -x "$venv/bin/kubernetes-validate" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "setup-venv: $venv is up to date"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-venv: creating $venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
"$venv/bin/kubernetes-validate" --version
echo "$want" > "$stamp"
echo "setup-venv: installed $(tr '\n' ' ' < <(grep -v '^#' "$requirements"))into $venv"
