#!/usr/bin/env bash
# pytest's summary line in each log named ("5 failed, 533 passed, 12 deselected in
# 183.97s"), or a line that says there is none (the run died before it closed).
set -uo pipefail
for log in "$@"; do
  line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|errors?|skipped|deselected)|^(=+ )?no tests ran' "$log" 2>/dev/null \
    | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')
  echo "${line:-no pytest summary line in $log}"
done
