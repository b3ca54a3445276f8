#!/usr/bin/env bash
# Times `bash scripts/run.sh` in a checkout DIR: seconds from the command to the server's
# "event=listening" line (every listener on 127.0.0.1:0), then stops the server with SIGTERM.
# For the "First run" section of benchmarks/README.md: run it on a fresh `git clone`, then again.
#   usage: bash benchmarks/first_run.sh DIR
set -euo pipefail
dir=$1
log=$(mktemp)
start=$(date +%s.%N)
(
  cd "$dir"
  export GOVMAIL_SMTP__MX_LISTEN=127.0.0.1:0 GOVMAIL_SMTP__SUBMISSION_LISTEN=127.0.0.1:0 \
    GOVMAIL_SMTP__SUBMISSIONS_LISTEN=127.0.0.1:0 GOVMAIL_IMAP__LISTEN=127.0.0.1:0 \
    GOVMAIL_IMAP__TLS_LISTEN=127.0.0.1:0 GOVMAIL_ADMIN_API__LISTEN=127.0.0.1:0
  exec bash scripts/run.sh
) >"$log" 2>&1 &
pid=$!
until grep -q "event=listening" "$log"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run.sh exited before listening:"
    cat "$log"
    rm -f "$log"
    exit 1
  fi
  sleep 0.2
done
end=$(date +%s.%N)
grep -E "install-test-deps|spamd_ready|event=listening" "$log" || true
echo "seconds to listening: $(echo "$end - $start" | bc)"
kill -TERM "$pid"
wait "$pid" || true
rm -f "$log"
