#!/usr/bin/env bash
# The whole test suite: installs test peers, builds and publishes, runs every test project,
# and ends with the totals alone on a line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
tools/build.sh
tools/guest/build.sh # the Linux guest the guest tests boot (downloads are cached in build/guest/cache)

results=build/test-results
rm -rf "$results"
status=0
dotnet test Colo.sln -c "${CONFIGURATION:-Release}" --no-build -nologo \
    --logger "trx" --logger "console;verbosity=minimal" --results-directory "$results" "$@" || status=$?

passed=0
failed=0
shopt -s nullglob
for trx in "$results"/*.trx; do
    counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
    p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
    f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
done
if ((status != 0 && failed == 0)); then
    failed=1 # the runner failed without a test result to blame (build or crash): count it
fi
echo "${passed} passed, ${failed} failed"
exit "$status"
