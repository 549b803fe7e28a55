#!/usr/bin/env bash
# Runs every test and ends with one summary line that counts all of them:
# the host's cargo tests (unit, property, and the QEMU integration tests in
# tests/) plus the in-kernel tests each QEMU suite boot ran, which the
# integration tests record in target/test-results/.
set -uo pipefail
cd "$(dirname "$0")/.."

results=target/test-results
log=target/test-log.txt
mkdir -p target
rm -rf "$results"

cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

sum() { # sum FILES...: "passed failed" over every libtest summary line in FILES
    cat "$@" 2>/dev/null | awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/) p += $i
            if ($(i+1) ~ /^failed/) f += $i
        }
    } END { printf "%d %d\n", p, f }'
}

read -r host_passed host_failed < <(sum "$log")
read -r kernel_passed kernel_failed < <(sum "$results"/*.txt)
passed=$((host_passed + kernel_passed))
failed=$((host_failed + kernel_failed))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1 # cargo failed before any test could (a build error)
fi

# Docs drift check: README.md quotes the closing summary line of a full run;
# a run whose count differs (a test added or removed without updating the
# README) fails here, so stale numbers cannot land.
quoted=$(grep -m1 -E '^test result: ok\. [0-9]+ passed; 0 failed$' README.md || true)
actual="test result: ok. $passed passed; 0 failed"
drift=0
if [ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$quoted" != "$actual" ]; then
    echo
    echo "docs drift: README.md quotes '${quoted:-no summary line}', this run ended '$actual'."
    echo "            Update README.md's test summary (and the counts beside it) to this run."
    drift=1
fi

echo
echo "== Pagekeeper test summary =="
echo "host tests (cargo test, incl. QEMU boots): $host_passed passed; $host_failed failed"
echo "in-kernel tests run inside those boots:    $kernel_passed passed; $kernel_failed failed ($(ls "$results" 2>/dev/null | sed 's/\.txt$//' | tr '\n' ' '))"
if [ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$drift" -eq 0 ]; then
    echo "test result: ok. $passed passed; 0 failed"
elif [ "$drift" -ne 0 ]; then
    echo "docs drift check: 1 failed (README.md's summary line)"
    echo "test result: FAILED. $passed passed; 1 failed"
    exit 1
else
    echo "test result: FAILED. $passed passed; $failed failed"
    exit 1
fi
