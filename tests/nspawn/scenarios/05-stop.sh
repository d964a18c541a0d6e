# Stop: `systemctl stop itk.service` during a slow download lets it finish, then itk exits 0 with nothing
# left for systemd to kill; itk.socket keeps listening and the next connection starts itk again.
# timeout: 90
. "$ITK_TESTS/lib.sh"

size_mib=64
rate=16M  # about 4 s for the whole file
big_file /srv/www/alice/big.bin alice:alice $size_mib

activate
main=$(prop MainPID)

step "a slow download is in flight"
curl -sS --max-time 60 --limit-rate $rate -o "$SCEN_TMP/big.out" -w '%{http_code} %{size_download}' \
  -H "Host: alice.test" "$BASE_URL/big.bin" >"$SCEN_TMP/big.result" 2>&1 &
download=$!
wait_for 10 "the download to start" '[[ -s $SCEN_TMP/big.out ]]'

step "systemctl stop while it runs"
journal_mark
begin=$SECONDS
out=$(systemctl stop itk.service 2>&1) || fail "systemctl stop itk.service failed:" "$out"
took=$((SECONDS - begin))
echo "systemctl stop returned after ${took}s"
# curl may still be reading what the kernel buffered after the worker's last write: wait for it.
wait "$download" || fail "the download failed across the stop: $(cat "$SCEN_TMP/big.result")"
expect_eq "$(cat "$SCEN_TMP/big.result")" "200 $((size_mib * 1048576))" "status and size of the download that spanned the stop"
((took >= 1)) || fail "systemctl stop returned in ${took}s: it did not wait for the download"

step "itk stopped cleanly"
expect_prop ActiveState inactive
expect_prop Result success
expect_prop ExecMainCode 1  # CLD_EXITED: the master exited by itself
expect_prop ExecMainStatus 0
expect_eq "$(pids_of itkd; pids_of itk-acceptor; pids_of itk-worker)" "" "itk processes left after the stop"
journal=$(journal_since)
echo "$journal"
expect_not_contains "$journal" "SIGKILL" "journal of the stop"
expect_not_contains "$journal" "Killing process" "journal of the stop"
expect_not_contains "$journal" "timed out" "journal of the stop"
expect_contains "$journal" "itk.service: Deactivated successfully" "journal of the stop"

step "the socket stays listening and the next connection starts itk again"
expect_prop ActiveState active itk.socket
expect_prop SubState listening itk.socket
expect_http bob.test / 200 "bob's home page"
wait_active
expect_ne "$(prop MainPID)" "$main" "MainPID after the new start"
