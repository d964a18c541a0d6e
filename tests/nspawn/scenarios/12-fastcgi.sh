# FastCGI pools under the real service: with `FastCGI = .php /usr/bin/php-cgi` on alice's and bob's vhosts
# PHP runs as the vhost's user in a warm php-cgi that is a child of the master (the same pid for two
# requests with FastCGIMaxProcesses = 1) and sits in serving/v-<vhost>/fastcgi; alice can reach bob's pool
# socket neither from PHP nor from a shell; a pool without traffic for FastCGIIdleTimeout has no process.
# timeout: 90
. "$ITK_TESTS/lib.sh"

php=/usr/bin/php-cgi
[[ -x $php ]] || skip "$php not installed (Debian package php-cgi; tools/test installs it)"
idle=2

for u in alice bob; do
  cat >>/etc/itk.d/10-$u.conf <<EOF
FastCGI = .php $php
FastCGIMaxProcesses = 1
FastCGIIdleTimeout = $idle
EOF
  put_file /srv/www/$u/who.php $u:$u 0644 '<?php
echo posix_getpwuid(posix_geteuid())["name"], " ", posix_getuid(), " ", posix_getgid(), " ", getmypid(), "\n";'
  put_file /srv/www/$u/connect.php $u:$u 0644 '<?php
$s = @stream_socket_client("unix://" . $_GET["p"], $errno, $errstr, 2);
if ($s === false) { echo "failed: $errno $errstr\n"; } else { echo "connected\n"; fclose($s); }'
done

# The first request starts itk.service with the FastCGI lines in place.
activate
main=$(prop MainPID)
cg=/sys/fs/cgroup$(prop ControlGroup)
expect_contains "$(status_text)" "cgroups: on" "STATUS"
# The pools live under $RUNTIME_DIRECTORY, /run/itk when the unit sets none.
runtime=$(tr '\0' '\n' </proc/"$main"/environ | sed -n 's/^RUNTIME_DIRECTORY=//p')
runtime=${runtime:-/run/itk}

# apps_of USER: pids of the master's php-cgi children running as USER, one per line.
apps_of() { pgrep -x php-cgi -P "$main" -u "$1" || true; }

step "PHP runs as the vhost's user, twice in the same php-cgi (FastCGIMaxProcesses = 1)"
for u in alice bob; do
  http $u.test /who.php
  expect_eq "$HTTP_STATUS" 200 "GET http://$u.test/who.php"
  read -r name uid gid pid1 <"$HTTP_BODY"
  expect_eq "$name $uid $gid" "$u $(id -u $u) $(id -g $u)" "user, uid and gid of PHP on $u.test"
  http $u.test /who.php
  expect_eq "$HTTP_STATUS" 200 "second GET http://$u.test/who.php"
  read -r _ _ _ pid2 <"$HTTP_BODY"
  expect_eq "$pid2" "$pid1" "pid of the second PHP request on $u.test (a warm process, not one per request)"
  [[ $pid1 =~ ^[0-9]+$ ]] || fail "expected a pid from $u.test's who.php, got '$pid1'"
  expect_eq "$(cat "/proc/$pid1/comm" 2>&1)" php-cgi "comm of $u.test's app process $pid1"
  expect_eq "$(awk '/^PPid:/ { print $2 }' "/proc/$pid1/status" 2>&1)" "$main" "parent of $u.test's php-cgi"
  expect_eq "$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid1/status" 2>&1)" \
    "$uid $uid $uid $uid" "uids of $u.test's php-cgi"

  step "$u.test's php-cgi is in serving/v-$u.test/fastcgi"
  expect_match "$(sed -n 's/^0:://p' "/proc/$pid1/cgroup")" "/serving/v-$u\\.test/fastcgi$" \
    "cgroup2 path of php-cgi $pid1"
  [[ -d $cg/serving/v-$u.test/fastcgi ]] || fail "expected the cgroup $cg/serving/v-$u.test/fastcgi"
  expect_contains "$(cat "$cg/serving/v-$u.test/fastcgi/cgroup.procs")" "$pid1" \
    "processes of serving/v-$u.test/fastcgi"
done

step "alice cannot reach bob's pool socket"
bob_sock=""
# The socket's name is checked by the integration test; here any socket of bob's pool directory will do.
for s in "$runtime"/fastcgi/*/*.sock; do
  [[ -S $s && $(stat -c %U "$s") == bob ]] && bob_sock=$s
done
[[ -n $bob_sock ]] || fail "expected a socket owned by bob in $runtime/fastcgi/*/" \
  "$(ls -laR "$runtime/fastcgi" 2>&1)"
expect_eq "$(stat -c '%U %a' "$bob_sock")" "bob 600" "owner and mode of $bob_sock"
expect_eq "$(stat -c '%U' "$(dirname "$bob_sock")")" root "owner of $(dirname "$bob_sock")"
query="/connect.php?p=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$bob_sock")"
expect_http bob.test "$query" 200 "connected"
expect_http alice.test "$query" 200 "failed: 13 Permission denied"
connect_as() {  # USER SOCKET: connect() as USER, with no supplementary groups
  setpriv --reuid="$1" --regid="$1" --clear-groups python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("connected")
except OSError as e:
    print("errno", e.errno)' "$2" 2>&1
}
expect_eq "$(connect_as bob "$bob_sock")" "connected" "connect() to $bob_sock as bob"
expect_eq "$(connect_as alice "$bob_sock")" "errno 13" "connect() to $bob_sock as alice"
expect_eq "$(connect_as carol "$bob_sock")" "errno 13" "connect() to $bob_sock as carol"

step "pools without traffic for FastCGIIdleTimeout = $idle stop"
http alice.test /who.php
expect_eq "$HTTP_STATUS" 200 "GET http://alice.test/who.php"
read -r name _ _ last_pid <"$HTTP_BODY"
expect_eq "$name" alice "user of PHP on alice.test"
expect_eq "$(apps_of alice)" "$last_pid" "alice's php-cgi children of the master"
start=$SECONDS
wait_for $((idle + 4)) "no php-cgi left under the master" '[[ -z $(pgrep -x php-cgi -P '"$main"') ]]'
echo "the pools stopped $((SECONDS - start))s after the last request"
expect_eq "$(count_of php-cgi)" 0 "php-cgi processes in the container"
[[ -z $(cat "$cg/serving/v-alice.test/fastcgi/cgroup.procs" 2>/dev/null) ]] ||
  fail "expected serving/v-alice.test/fastcgi empty, it holds $(cat "$cg/serving/v-alice.test/fastcgi/cgroup.procs")"

step "the next request starts the pool again"
http alice.test /who.php
expect_eq "$HTTP_STATUS" 200 "GET http://alice.test/who.php after the idle stop"
read -r name _ _ pid3 <"$HTTP_BODY"
expect_eq "$name" alice "user of PHP after the idle stop"
expect_ne "$pid3" "$last_pid" "pid of the restarted pool's php-cgi"
expect_eq "$(apps_of alice)" "$pid3" "alice's php-cgi children of the master"
expect_prop MainPID "$main"
