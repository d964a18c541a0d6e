# Worker reuse under itk.service with per-vhost cgroups: one worker serves alice's successive connections;
# between them it waits in serving/v-alice.test/spare, during one it is in a connection leaf c*; a spare
# does not take alice's only MaxClientsVHost slot; and what a CGI daemonized still dies with its
# connection although the worker lives on.
# timeout: 60
. "$ITK_TESTS/lib.sh"

# One acceptor: it owns every spare, so the next connection finds the worker the previous one left.
# QueueTimeout 1: a connection over MaxClientsVHost while the slow request runs (4 s) is refused after 1 s;
# one that comes while the leaf of the previous connection is still being removed (a daemonized child
# exiting) waits for it instead of being refused.
cat >/etc/itk.conf <<'EOF2'
[server]
StartServers = 1
QueueTimeout = 1
EOF2
cat >>/etc/itk.d/10-alice.conf <<'EOF2'
MaxClientsVHost = 1
CGI = .cgi
EOF2
head='#!/bin/sh
printf "Content-Type: text/plain\n\n"
'
put_file /srv/www/alice/pid.cgi alice:alice 0755 "$head"'echo "$PPID"'
# The CGI's own cgroup is its worker's connection leaf: the worker itself is hidden from it in /proc
# (non-dumpable, ProtectProc=invisible).
put_file /srv/www/alice/cgroup.cgi alice:alice 0755 "$head"'echo "$PPID"
sed -n "s/^0:://p" /proc/self/cgroup'
put_file /srv/www/alice/slow.cgi alice:alice 0755 "$head"'echo "$PPID"
sleep 4
echo done'
put_file /srv/www/alice/daemon.cgi alice:alice 0755 '#!/bin/sh
setsid sleep 1000.35 </dev/null >/dev/null 2>&1 &
printf "Content-Type: text/plain\n\n"
echo "$PPID"'

activate
cg=/sys/fs/cgroup$(prop ControlGroup)
vdir=$cg/serving/v-alice.test
alice_uid=$(id -u alice)

# close_request PATH: one request to alice.test on a connection of its own, closed after the response.
close_request() {
  http alice.test "$1" -H "Connection: close"
  [[ $HTTP_STATUS == 200 ]] || fail "GET http://alice.test$1: expected status 200, got $HTTP_STATUS" "$(http_describe)"
}

cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null || echo "(no process $1)"; }

# wait_spare PID: the worker is done with its connection and waits in alice's spare cgroup.
wait_spare() {
  wait_for 10 "worker $1 to wait in $vdir/spare" '[[ $(cgroup_of '"$1"') == */serving/v-alice.test/spare ]]'
}

leaves() { find "$vdir" -mindepth 1 -maxdepth 1 -type d -name 'c*' -printf '%f\n'; }

step "two Connection: close requests are served by one worker"
close_request /pid.cgi
worker=$(head -n 1 "$HTTP_BODY")
[[ $worker =~ ^[0-9]+$ ]] || fail "expected the script to print its parent's pid" "$(http_describe)"
expect_eq "$(cat /proc/"$worker"/comm)" itk-worker "comm of the script's parent $worker"
expect_eq "$(awk '/^Uid:/ { print $2, $3, $4 }' /proc/"$worker"/status)" "$alice_uid $alice_uid $alice_uid" \
  "uids of worker $worker"
wait_spare "$worker"
close_request /pid.cgi
expect_eq "$(head -n 1 "$HTTP_BODY")" "$worker" "worker of the second Connection: close request"

step "between connections the worker waits in spare/, during one it is in a connection leaf"
wait_spare "$worker"
wait_for 10 "no connection leaf under $vdir once the connection ended" '[[ -z $(leaves) ]]'
close_request /cgroup.cgi
expect_eq "$(head -n 1 "$HTTP_BODY")" "$worker" "worker of the request that prints its cgroup"
during=$(sed -n 2p "$HTTP_BODY")
expect_match "$during" "/serving/v-alice\.test/c[0-9]+-[0-9]+$" "cgroup of worker $worker during a request"
wait_spare "$worker"
[[ ! -d /sys/fs/cgroup$during ]] || wait_for 10 "the leaf $during to be removed" "[[ ! -d /sys/fs/cgroup$during ]]"

step "MaxClientsVHost = 1: the waiting spare takes the slot only with a connection; a second one gets 503"
curl -sS --max-time 30 -o "$SCEN_TMP/slow.out" -H "Host: alice.test" -H "Connection: close" \
  "$BASE_URL/slow.cgi" 2>"$SCEN_TMP/slow.err" &
slow=$!
wait_for 10 "worker $worker to take the slow request in a connection leaf" \
  '[[ $(cgroup_of '"$worker"') =~ /serving/v-alice\.test/c[0-9]+-[0-9]+$ ]]'
http alice.test /index.html
expect_eq "$HTTP_STATUS" 503 "a second connection to alice.test while the slow one runs (MaxClientsVHost = 1)"
grep -qi '^Retry-After:' "$HTTP_HEADERS" || fail "503 without Retry-After" "$(http_describe)"
expect_http bob.test / 200 "bob's home page"
wait "$slow" || fail "the slow request to alice.test failed: $(cat "$SCEN_TMP/slow.err")"
expect_eq "$(cat "$SCEN_TMP/slow.out")" "$worker
done" "the slow request's body (served by the spare $worker)"
wait_spare "$worker"
expect_http alice.test /index.html 200 "alice's home page"
wait_spare "$worker"

step "a CGI's setsid-daemonized child dies with its connection; the worker stays as a spare"
close_request /daemon.cgi
expect_eq "$(head -n 1 "$HTTP_BODY")" "$worker" "worker of /daemon.cgi"
wait_for 10 "the daemonized sleep to be gone" '! pgrep -f "sleep 1000.35" >/dev/null'
wait_spare "$worker"
close_request /pid.cgi
expect_eq "$(head -n 1 "$HTTP_BODY")" "$worker" "worker of the request after /daemon.cgi"
