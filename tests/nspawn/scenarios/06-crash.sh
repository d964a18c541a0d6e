# Crash: an acceptor killed with SIGKILL is replaced by the master while the service stays up; a master
# killed with SIGKILL is restarted by systemd (Restart=on-failure) and serves again on the same socket.
# timeout: 60
. "$ITK_TESTS/lib.sh"

activate
main=$(prop MainPID)
wait_for 10 "two acceptors" '[[ $(count_of itk-acceptor) == 2 ]]'

step "SIGKILL to an acceptor"
victim=$(pids_of itk-acceptor | head -n 1)
journal_mark
kill -KILL "$victim"
wait_for 10 "acceptor $victim to be replaced" \
  '! kill -0 $victim 2>/dev/null && [[ $(count_of itk-acceptor) == 2 ]]'
for a in $(pids_of itk-acceptor); do
  expect_eq "$(ps -o ppid= -p "$a" | tr -d ' ')" "$main" "parent of acceptor $a"
  expect_eq "$(ps -o user= -p "$a")" itk "user of acceptor $a"
done
wait_active
expect_prop MainPID "$main"
expect_prop NRestarts 0
wait_for 10 "the journal to report acceptor $victim killed" 'journal_has "acceptor $victim was killed by signal 9"'
for h in alice bob carol; do
  expect_http $h.test / 200 "$h's home page"
done

step "SIGKILL to the master"
restarts=$(prop NRestarts)
journal_mark
kill -KILL "$main"
# A client that connects while no itk process is left waits in the socket's queue and is answered after
# the restart.
wait_for 10 "systemd to notice the master's death" '[[ $(prop ActiveState) != active || $(prop MainPID) != $main ]]'
curl -sS --max-time 20 -o "$SCEN_TMP/gap.out" -w '%{http_code}' -H "Host: bob.test" "$BASE_URL/" \
  >"$SCEN_TMP/gap.result" 2>&1 &
gap=$!
# RestartSec=2s in itk.service: give it a few times that.
wait_for 20 "systemd to restart itk.service" \
  '[[ $(prop NRestarts) == $((restarts + 1)) && $(prop ActiveState) == active && $(prop MainPID) != $main && $(prop MainPID) != 0 ]]'
new_main=$(prop MainPID)
echo "master $main killed; systemd restarted itk.service as $new_main"
expect_eq "$(ps -o comm= -p "$new_main")" itkd "comm of the new MainPID"
journal=$(journal_since)
echo "$journal"
expect_contains "$journal" "Main process exited, code=killed, status=9/KILL" "journal after killing the master"
expect_contains "$journal" "Scheduled restart job" "journal after killing the master"
wait "$gap" || fail "the request sent while itk was down failed: $(cat "$SCEN_TMP/gap.result")"
expect_eq "$(cat "$SCEN_TMP/gap.result") $(cat "$SCEN_TMP/gap.out")" "200 bob's home page" "the request sent while itk was down"
for h in alice bob carol; do
  expect_http $h.test / 200 "$h's home page"
done
wait_for 10 "two acceptors of the new master" '[[ $(count_of itk-acceptor) == 2 ]]'
# Nothing of the killed master's tree survives: every acceptor is the new master's.
for a in $(pids_of itk-acceptor); do
  expect_eq "$(ps -o ppid= -p "$a" | tr -d ' ')" "$new_main" "parent of acceptor $a after the restart"
done
expect_prop ActiveState active itk.socket
