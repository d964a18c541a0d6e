# Per-vhost logs in a booted system: files under /var/log/itk made by itk (root:<vhost group> 0640, dirs
# 0750), one Combined line per request that GoAccess counts right, and the shipped logrotate file rotating
# them with `logrotate -f` while itk goes on writing to the new files.
# timeout: 90
. "$ITK_TESTS/lib.sh"

for tool in goaccess logrotate; do
  command -v "$tool" >/dev/null || fail "$tool not found: the scenarios use the host's /usr (apt-get install $tool)"
done
rotate=$(find /usr/local/etc/logrotate.d /etc/logrotate.d -name itk 2>/dev/null | head -n1)
[[ -n $rotate ]] || fail "meson install put no logrotate file itk under /usr/local/etc/logrotate.d or /etc/logrotate.d"

step "AccessLog and ErrorLog for every vhost, in [server]"
cat >>/etc/itk.conf <<'EOF'
AccessLog = /var/log/itk/%v/access.log
ErrorLog = /var/log/itk/%v/error.log
EOF
activate
out=$(systemctl reload itk.service 2>&1) || fail "systemctl reload itk.service failed with the log keys:" "$out"
wait_for 10 "/var/log/itk/alice.test/access.log to exist" '[[ -f /var/log/itk/alice.test/access.log ]]'
expect_eq "$(stat -c '%U:%G %a' /var/log/itk/alice.test/access.log)" "root:alice 640" "owner and mode of alice's access log"
expect_eq "$(stat -c '%U:%G %a' /var/log/itk/alice.test)" "root:alice 750" "owner and mode of alice's log directory"
expect_eq "$(stat -c '%U:%G %a' /var/log/itk/bob.test/error.log)" "root:bob 640" "owner and mode of bob's error log"

step "one Combined line per request, counted by GoAccess"
before=$(wc -l </var/log/itk/alice.test/access.log)
for i in 1 2 3 4 5; do expect_http alice.test "/?n=$i" 200; done
expect_http alice.test /missing.html 404
wait_for 5 "six new lines in alice's access log" '(( $(wc -l </var/log/itk/alice.test/access.log) == before + 6 ))'
tail -n 6 /var/log/itk/alice.test/access.log
expect_match "$(tail -n 1 /var/log/itk/alice.test/access.log)" \
  '^127\.0\.0\.1 - - \[[^]]+\] "GET /missing\.html HTTP/1\.1" 404 [0-9]+ "-" "curl/[^"]+"$' "the last line of alice's access log"
expect_contains "$(cat /var/log/itk/alice.test/error.log)" "/missing.html" "alice's error log after a 404"
[[ ! -s /var/log/itk/bob.test/access.log ]] || fail "bob's access log has lines for alice's requests:" "$(cat /var/log/itk/bob.test/access.log)"
goaccess /var/log/itk/alice.test/access.log --log-format=COMBINED --no-global-config -o "$SCEN_TMP/report.json" \
  >"$SCEN_TMP/goaccess.out" 2>&1 || fail "goaccess failed on alice's access log:" "$(cat "$SCEN_TMP/goaccess.out")"
total=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["general"]["total_requests"])' "$SCEN_TMP/report.json")
expect_eq "$total" "$((before + 6))" "total_requests GoAccess reads in alice's access log"

step "journal fields: ITK_VHOST and ITK_STATUS select a vhost's entries"
# `journalctl -u itk ITK_VHOST=alice.test` is how an operator reads one customer's errors (docs/operations.md).
wait_for 10 "a journal entry with ITK_VHOST=alice.test and ITK_STATUS=404 naming /missing.html" \
  '[[ $(journalctl -u itk.service ITK_VHOST=alice.test ITK_STATUS=404 -o cat --no-pager) == *"/missing.html"* ]]'
out=$(journalctl -u itk.service ITK_VHOST=bob.test -o cat --no-pager)
[[ $out != *"/srv/www/alice/missing.html"* ]] || fail "an entry about alice's request carries ITK_VHOST=bob.test:" "$out"
out=$(journalctl -u itk.service ITK_VHOST=alice.test ITK_STATUS=200 -o cat --no-pager)
[[ $out != *"/srv/www/alice/missing.html"* ]] || fail "the entry of a 404 carries ITK_STATUS=200:" "$out"

step "logrotate -f with the shipped file: renamed, reopened, nothing lost"
logrotate -f -s "$SCEN_TMP/logrotate.state" "$rotate" || fail "logrotate -f $rotate failed"
[[ -f /var/log/itk/alice.test/access.log.1 ]] || fail "no access.log.1 after logrotate -f:" "$(ls -l /var/log/itk/alice.test)"
expect_eq "$(wc -l </var/log/itk/alice.test/access.log.1)" "$((before + 6))" "lines in the rotated access log"
# itk makes the new file when SIGUSR1 (the postrotate) has it reopen; a connection an old acceptor
# still takes in that moment writes to the renamed file, which is kept: nothing is lost either way.
wait_for 10 "itk to make a new access.log after SIGUSR1" '[[ -f /var/log/itk/alice.test/access.log ]]'
landed=0
for i in $(seq 1 20); do
  http alice.test "/after-rotate-$i"
  if grep -qF "/after-rotate-$i " /var/log/itk/alice.test/access.log; then landed=1; break; fi
  sleep 0.5
done
((landed)) || fail "no request after the rotation reached the new access.log:" "$(tail -n 5 /var/log/itk/alice.test/access.log.1)"
for j in $(seq 1 "$i"); do
  n=$(cat /var/log/itk/alice.test/access.log /var/log/itk/alice.test/access.log.1 | grep -cF "/after-rotate-$j " || true)
  expect_eq "$n" 1 "lines for /after-rotate-$j across the new and the rotated file"
done
expect_eq "$(stat -c '%U:%G %a' /var/log/itk/alice.test/access.log)" "root:alice 640" "owner and mode of the reopened access log"
expect_prop ActiveState active
