#!/usr/bin/env bash
# The suite on several Pythons, each in its own virtualenv, at one end of the
# dependency range:
#   bash .ci/matrix.sh newest 3.12 3.13   # the newest releases: .venv-3.12, .venv-3.13
#   bash .ci/matrix.sh lowest 3.11 3.12   # .ci/lowest-constraints.txt: .venv-3.11-lowest, ...
# `make test-matrix` and `make test-lowest` call it for PYTHONS. Each run prints its
# interpreter, its `pip freeze` (kept in build/ci/freeze-X.Y-END.txt) and pytest's
# summary line (the output is kept in build/ci/pytest-X.Y-END.log). Every run is
# tried; the exit status is 1 if any failed. A Python that cannot be found fails its
# run under CI=true, and is skipped with a loud line elsewhere (a developer may not
# have them all).
set -uo pipefail
cd "$(dirname "$0")/.."
end=${1:?usage: matrix.sh newest|lowest X.Y...}
shift
case $end in
  newest) constraints="" ;;
  # The whole suite here too, not a list of the tests that touch werkzeug, watchdog
  # and psycopg: that is most of it (serving, the publisher, error pages, the watcher,
  # the engine, the CLI, packaging, the demo on PostgreSQL, and the frameworks, which
  # werkzeug's pin takes down to Flask 3.0), a list would fall behind new tests, and
  # the whole costs 3-4 minutes of pytest a run on 2 cores, which keeps all of
  # .ci/run well under an hour (measured in issue 18's closing note).
  lowest) constraints=.ci/lowest-constraints.txt ;;
  *) echo "matrix: the end is 'newest' or 'lowest', not '$end'" >&2; exit 2 ;;
esac
# Full-suite runs of engineers sharing a machine take turns on this lock (flock(1));
# on a machine of its own, CI takes it at once. Without flock (not Linux) no turns.
lock=${HOTMOD_SUITE_LOCK:-/tmp/hotmod-fullsuite.lock}
locked() { if command -v flock >/dev/null 2>&1; then flock "$lock" "$@"; else "$@"; fi; }
mkdir -p build/ci
failed=()
for version in "$@"; do
  name="$version $end"
  if ! python=$(bash .ci/find-python.sh "$version"); then
    if [[ ${CI:-} == true ]]; then
      echo "matrix: FAILED [$name]: Python $version is to be tested but was not found (see the line above)" >&2
      failed+=("$name")
    else
      echo "matrix: SKIPPED [$name]: Python $version not found (CI=true fails here instead)" >&2
    fi
    continue
  fi
  venv=.venv-$version${constraints:+-lowest}
  echo "matrix: [$name] $python ($("$python" -VV | head -n 1)), virtualenv $venv"
  if ! make --no-print-directory install PYTHON="$python" VENV="$venv" CONSTRAINTS="$constraints"; then
    echo "matrix: FAILED [$name]: the install into $venv failed" >&2
    failed+=("$name")
    continue
  fi
  freeze=build/ci/freeze-$version-$end.txt
  "$venv/bin/python" -m pip freeze --exclude-editable >"$freeze"
  echo "matrix: [$name] pip freeze ($freeze):"
  sed 's/^/    /' "$freeze"
  log=build/ci/pytest-$version-$end.log
  started=$SECONDS
  if locked make --no-print-directory test PYTHON="$python" VENV="$venv" CONSTRAINTS="$constraints" \
    PYTEST_ARGS="${PYTEST_ARGS:-}" 2>&1 | tee "$log"; then
    echo "matrix: passed [$name] in $((SECONDS - started)) s: $(bash .ci/summary.sh "$log")"
  else
    echo "matrix: FAILED [$name] in $((SECONDS - started)) s: $(bash .ci/summary.sh "$log")" >&2
    failed+=("$name")
  fi
done
if ((${#failed[@]})); then
  echo "matrix: FAILED: $(printf '[%s] ' "${failed[@]}")" >&2
  exit 1
fi
