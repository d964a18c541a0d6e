# A hostile tenant under the real service (docs/security.md, "Hostile tenants"): alice's scripts cannot see
# bob's processes in /proc (ProtectProc=invisible); each vhost has a private temporary directory the other
# cannot enter; a CGI that stops its own worker loses the worker and whatever it started (cgroup.kill), and
# bob keeps being served; a daemon left by alice's PHP that feeds its own pool socket does not keep the
# pool alive, and dies with it.
# timeout: 120
. "$ITK_TESTS/lib.sh"

php=/usr/bin/php-cgi
idle=2
cat >>/etc/itk.conf <<'EOF'
MaxClients = 8
EOF
for u in alice bob; do
  cat >>/etc/itk.d/10-$u.conf <<EOF
CGI = .cgi
EOF
  put_file /srv/www/$u/slow.cgi $u:$u 0755 '#!/bin/sh
printf "Content-Type: text/plain\n\nstarted\n"
exec sleep 20.1401'
  put_file /srv/www/$u/procs.cgi $u:$u 0755 '#!/bin/sh
printf "Content-Type: text/plain\n\n"
for p in /proc/[0-9]*; do echo "$(stat -c %U "$p" 2>/dev/null) $(tr "\0" " " <"$p/cmdline" 2>/dev/null)"; done'
  put_file /srv/www/$u/tmp.cgi $u:$u 0755 '#!/bin/sh
printf "Content-Type: text/plain\n\n"
echo "tmpdir=$TMPDIR $(stat -c "%U %a" "$TMPDIR")"
other=${QUERY_STRING#other=}
if ls "$other" >/dev/null 2>&1 || touch "$other/planted" 2>/dev/null; then echo "other=open"; else echo "other=closed"; fi'
done
put_file /srv/www/alice/stop.cgi alice:alice 0755 '#!/bin/sh
kill -STOP $PPID
exec sleep 30.1402'
if [[ -x $php ]]; then
  cat >>/etc/itk.d/10-alice.conf <<EOF
FastCGI = .php $php
FastCGIIdleTimeout = $idle
EOF
  # The daemon a tenant's PHP leaves: it feeds its own pool's socket with requests.
  install -o alice -g alice -m 0644 "$ITK_TESTS/tenant/poke-fastcgi.py" /srv/www/alice/poke.py
  put_file /srv/www/alice/who.php alice:alice 0644 '<?php echo getmypid(), "\n";'
  put_file /srv/www/alice/spawn.php alice:alice 0644 '<?php exec("cd /srv/www/alice && python3 poke.py who.php"); echo getmypid(), "\n";'
fi

activate
expect_contains "$(status_text)" "cgroups: on" "STATUS"
cg=/sys/fs/cgroup$(prop ControlGroup)

step "ProtectProc=invisible: alice's CGI sees only alice's processes while bob's run"
expect_prop ProtectProc invisible
curl -sS --max-time 30 -o /dev/null -H "Host: bob.test" "$BASE_URL/slow.cgi" &
wait_for 10 "bob's slow CGI to run" 'pgrep -u bob -f "sleep 20.1401" >/dev/null'
http alice.test /procs.cgi
expect_eq "$HTTP_STATUS" 200 "GET http://alice.test/procs.cgi"
owners=$(awk '{print $1}' "$HTTP_BODY" | sort -u | tr '\n' ' ')
expect_eq "$owners" "alice " "owners of the processes alice's CGI can see in /proc"
expect_not_contains "$(cat "$HTTP_BODY")" "20.1401" "processes alice's CGI can see (bob's CGI among them?)"

step "each vhost's temporary directory is its own"
for pair in alice:bob bob:alice; do
  u=${pair%%:*} o=${pair##*:}
  http $u.test "/tmp.cgi?other=/var/lib/itk/tmp/$o.test"
  expect_eq "$HTTP_STATUS" 200 "GET http://$u.test/tmp.cgi"
  expect_eq "$(sed -n 's/^tmpdir=//p' "$HTTP_BODY")" "/var/lib/itk/tmp/$u.test $u 700" "TMPDIR of $u's CGI, its owner and mode"
  expect_eq "$(sed -n 's/^other=//p' "$HTTP_BODY")" closed "$u's CGI listing or writing $o's temporary directory"
done

step "alice's CGIs stop their own workers: bob is served, the workers and what they started are killed"
for i in 1 2 3 4 5 6; do
  curl -sS --max-time 20 -o /dev/null -H "Host: alice.test" "$BASE_URL/stop.cgi" &
done
sleep 0.5
expect_http bob.test / 200
wait_for 15 "alice's stopped workers and their CGIs to be gone" '! pgrep -f "sleep 30.1402" >/dev/null'
wait_for 10 "alice.test's connection cgroups to be gone" \
  '[[ -z $(find "$cg/serving/v-alice.test" -mindepth 1 -maxdepth 1 -type d -name "c*") ]]'
journal_has "was stopped by a signal" || fail "expected the journal to say why alice's workers were killed" "$(journal_since | tail -20)"
expect_http alice.test / 200

if [[ ! -x $php ]]; then
  skip "$php not installed (Debian package php-cgi): the FastCGI part was not checked"
fi
step "a daemon of alice's PHP feeding its own pool socket does not keep the pool, and dies with it"
http alice.test /spawn.php
expect_eq "$HTTP_STATUS" 200 "GET http://alice.test/spawn.php"
app=$(head -1 "$HTTP_BODY")
wait_for 5 "alice's daemon to run" 'pgrep -u alice -f "python3 poke.py" >/dev/null'
daemon=$(pgrep -u alice -f "python3 poke.py")
expect_match "$(sed -n 's/^0:://p' "/proc/$daemon/cgroup")" "/serving/v-alice\\.test/fastcgi$" "cgroup of alice's daemon"
wait_for $((idle + 5)) "alice's php-cgi $app to stop (FastCGIIdleTimeout = $idle)" '! kill -0 '"$app"' 2>/dev/null'
wait_for 5 "alice's daemon to be killed with its pool" '! kill -0 '"$daemon"' 2>/dev/null'
