# Per-vhost cgroups: each connection's worker lives in serving/v-<vhost>/c* (an idle one waits in
# serving/v-<vhost>/spare, not counted), MaxClientsVHost is counted there by the kernel (a connection over
# it waits QueueTimeout for a slot, then gets 503 + Retry-After; other vhosts unaffected; a SIGKILLed
# worker frees its slot, which a waiting connection takes), a CGI's setsid-daemonized child dies with the request, and a vhost removed at reload loses
# its cgroup after GracefulShutdownTimeout.
# timeout: 90
. "$ITK_TESTS/lib.sh"

cat >>/etc/itk.conf <<'EOF2'
GracefulShutdownTimeout = 2
QueueTimeout = 2
EOF2
cat >>/etc/itk.d/10-alice.conf <<'EOF2'
MaxClientsVHost = 2
CGI = .cgi
EOF2
put_file /srv/www/alice/slow.cgi alice:alice 0755 '#!/bin/sh
printf "Content-Type: text/plain\n\n"
sleep 6
echo slow done'
put_file /srv/www/alice/daemon.cgi alice:alice 0755 '#!/bin/sh
setsid sleep 1000.25 </dev/null >/dev/null 2>&1 &
printf "Content-Type: text/plain\n\nstarted\n"'

activate
cg=/sys/fs/cgroup$(prop ControlGroup)
serving=$cg/serving
# Connection leaves of alice.test, and the workers in them (spares wait in spare/ and are not counted).
leaves() { find "$serving/v-alice.test" -mindepth 1 -maxdepth 1 -type d -name 'c*' | wc -l; }
busy_workers() {
  local p
  for p in $(cat "$serving"/v-alice.test/c*/cgroup.procs 2>/dev/null); do
    if [[ $(cat /proc/$p/comm 2>/dev/null) == itk-worker ]]; then echo "$p"; fi
  done
  return 0
}

step "the tree: master, acceptors and one cgroup per vhost"
expect_contains "$(status_text)" "cgroups: on" "STATUS"
for d in "$cg/master" "$serving/acceptors" "$serving/v-alice.test" "$serving/v-bob.test" "$serving/v-carol.test"; do
  [[ -d $d ]] || fail "expected the cgroup $d" "$(find "$cg" -type d | sed "s|^$cg|  |")"
done
expect_contains "$(cat "$cg/master/cgroup.procs")" "$(prop MainPID)" "processes of $cg/master"
for a in $(pids_of itk-acceptor); do
  expect_match "$(cat /proc/$a/cgroup)" "/serving/acceptors$" "cgroup of acceptor $a"
done

step "MaxClientsVHost = 2: two slow requests in flight, the third waits QueueTimeout (2 s), then 503"
for i in 1 2; do
  curl -sS --max-time 30 -o "$SCEN_TMP/slow.$i" -H "Host: alice.test" "$BASE_URL/slow.cgi" &
done
wait_for 10 "two connection cgroups under v-alice.test" '[[ $(leaves) == 2 ]]'
for w in $(pids_of itk-worker); do
  expect_match "$(cat /proc/$w/cgroup)" "/serving/v-alice\.test/(c[0-9]+-[0-9]+|spare)$" "cgroup of worker $w"
done
# A connection's leaf is made at admission; its worker moves in when the acceptor hands it over.
wait_for 10 "a worker in each of alice.test's connection cgroups" '[[ $(busy_workers | wc -l) == 2 ]]'
start=$(date +%s%N)
http alice.test /index.html
took=$((($(date +%s%N) - start) / 1000000))
expect_eq "$HTTP_STATUS" 503 "third request to alice.test while two run"
grep -qi '^Retry-After:' "$HTTP_HEADERS" || fail "503 without Retry-After" "$(http_describe)"
((took >= 1500 && took < 5000)) || fail "the 503 took $took ms: expected it after QueueTimeout = 2 s"
expect_http bob.test / 200 "bob's home page"
# STATUS is refreshed at most once a second.
wait_for 5 "STATUS to count alice.test at its limit" '[[ $(status_text) == *"at limit: 1"* ]]'

step "SIGKILL to a worker frees its slot, which a waiting connection takes"
victim=$(busy_workers)
victim=${victim%%$'\n'*}
[[ -n $victim ]] || fail "no worker in alice.test's connection cgroups" "$(find "$serving" -type d)"
curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H "Host: alice.test" "$BASE_URL/index.html" \
  >"$SCEN_TMP/waiting.code" 2>"$SCEN_TMP/waiting.err" &
waiting=$!
sleep 0.3  # the request waits for a slot (QueueTimeout = 2 s)
kill -KILL "$victim"
wait "$waiting" || fail "the request waiting for a slot of alice.test failed: $(cat "$SCEN_TMP/waiting.err")"
expect_eq "$(cat "$SCEN_TMP/waiting.code")" 200 "status of the request that waited for the killed worker's slot"
wait_for 10 "a slot on alice.test" '[[ $(leaves) -lt 2 ]]'
expect_http alice.test / 200 "alice's home page"
wait
wait_for 10 "alice.test's connections to end" '[[ $(leaves) == 0 ]]'

step "a CGI's setsid-daemonized child ends with the request"
expect_http alice.test /daemon.cgi 200 "started"
wait_for 10 "the daemonized sleep to be gone" '! pgrep -f "sleep 1000.25" >/dev/null'

step "a vhost removed at reload loses its cgroup"
rm /etc/itk.d/20-carol.conf
systemctl reload itk.service
wait_for 15 "v-carol.test to be removed" '[[ ! -d '"$serving"'/v-carol.test ]]'
[[ -d $serving/v-alice.test ]] || fail "v-alice.test disappeared at reload"
expect_http alice.test / 200 "alice's home page"
