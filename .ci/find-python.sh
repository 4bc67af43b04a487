#!/usr/bin/env bash
# Print the path of a working CPython X.Y interpreter: `bash .ci/find-python.sh 3.13`.
# Looked up on PATH first, then through pyenv. pyenv's shims stand on PATH for every
# version it has, but answer only for the selected one (a shim for 3.13 fails unless
# PYENV_VERSION names a 3.13), so a candidate counts only if it runs and says it is
# X.Y; the path printed is its real executable, which needs no shim afterwards.
# Exits 1 with one line on stderr when there is none.
set -euo pipefail
want=${1:?usage: find-python.sh X.Y}

check() {  # the real executable of "$@" if it runs and is Python $want
  local got
  got=$("$@" -c 'import sys; print("%d.%d" % sys.version_info[:2], sys.executable)' 2>/dev/null) || return 1
  [[ ${got%% *} == "$want" ]] || return 1
  echo "${got#* }"
}

if command -v "python$want" >/dev/null 2>&1 && check "python$want"; then
  exit 0
fi
root=${PYENV_ROOT:-$HOME/.pyenv}
if command -v pyenv >/dev/null 2>&1; then
  # The newest patch release pyenv has of X.Y.
  full=$(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}\.[0-9]+$" | sort -V | tail -n 1 || true)
  if [[ -n $full ]] && exe=$(PYENV_VERSION=$full pyenv which "python$want" 2>/dev/null) && check "$exe"; then
    exit 0
  fi
fi
for exe in $(ls -d "$root"/versions/"$want".*/bin/"python$want" 2>/dev/null | sort -V -r); do
  check "$exe" && exit 0
done
echo "no Python $want: not on PATH (python$want), not in pyenv (pyenv versions; $root/versions/$want.*)" >&2
exit 1
