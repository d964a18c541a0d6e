# itkctl in a booted system: the vhosts table and the check of /etc/itk.d, the running master's status over
# /run/itk/control.sock (root's, 0600; a tenant is refused), a reload through systemctl, and the process
# titles ps shows.
# timeout: 60
. "$ITK_TESTS/lib.sh"

itkctl=/usr/local/sbin/itkctl
[[ -x $itkctl ]] || fail "meson install put no itkctl at $itkctl"

step "itkctl vhosts lists /etc/itk.d"
out=$($itkctl vhosts) || fail "itkctl vhosts exited non-zero:" "$out"
expect_contains "$out" "Configuration: /etc/itk.conf and /etc/itk.d, 5 vhost(s)" "itkctl vhosts"
expect_contains "$out" "carol.test (default)  /etc/itk.d/20-carol.conf:2" "itkctl vhosts"
expect_contains "$out" "    aliases   www.alice.test" "itkctl vhosts"
expect_contains "$out" "    root      /srv/www/bob" "itkctl vhosts"
expect_contains "$out" "    user      alice:alice ($(id -u alice)/$(id -g alice))" "itkctl vhosts"

step "itkctl check --json"
out=$($itkctl check --json) || fail "itkctl check --json exited non-zero:" "$out"
expect_eq "$(python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["ok"], r["vhosts"], len(r["errors"]))' <<<"$out")" \
  "True 5 0" "ok, vhosts and errors of itkctl check --json"

step "itkctl status asks the running master"
activate
expect_http bob.test / 200 "bob's home page"
expect_http bob.test /missing.html 404
sock=/run/itk/control.sock
expect_eq "$(stat -c '%U %G %a %F' "$sock")" "root root 600 socket" "owner, group, mode and type of $sock"
json=$($itkctl status --json) || fail "itkctl status --json exited non-zero:" "$json"
field() { python3 -c 'import json, sys; r = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1" <<<"$json"; }
expect_eq "$(field 'r["pid"]')" "$(prop MainPID)" "pid in itkctl status"
expect_eq "$(field 'r["unit"]')" itk.service "unit in itkctl status"
expect_eq "$(field '[v["served"] for v in r["vhosts"] if v["name"] == "bob.test"][0]')" 2 "bob.test's requests served"
expect_eq "$(field 'len(r["vhosts"])')" 5 "vhosts in itkctl status"
out=$($itkctl status) || fail "itkctl status exited non-zero:" "$out"
expect_match "$out" $'\nbob\\.test +0 +[0-9]+ +0 +2 +0 ' "bob.test's row in itkctl status"

step "a tenant cannot reach the control socket"
out=$(setpriv --reuid=alice --regid=alice --clear-groups $itkctl status 2>&1) && fail "itkctl status as alice succeeded:" "$out"
expect_contains "$out" "Permission denied" "itkctl status as alice"

step "itkctl reload goes through systemctl reload"
before=$(field 'r["reloads"]')
out=$($itkctl reload 2>&1) || fail "itkctl reload exited non-zero:" "$out"
wait_for 10 "the master to count the reload" \
  '[[ $($itkctl status --json | python3 -c "import json, sys; print(json.load(sys.stdin)[\"reloads\"])") == $((before + 1)) ]]'
wait_active 10

step "process titles"
expect_eq "$(tr '\0' '\n' </proc/"$(prop MainPID)"/cmdline | head -n 1)" "itkd: master" "title of the master"
for a in $(pids_of itk-acceptor); do
  expect_eq "$(tr '\0' '\n' <"/proc/$a/cmdline" | head -n 1)" "itkd: acceptor" "title of acceptor $a"
done
expect_eq "$(ps -o comm= -p "$(prop MainPID)")" itkd "comm of the master (pgrep -x itkd)"
