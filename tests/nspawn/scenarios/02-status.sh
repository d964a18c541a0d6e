# sd_notify STATUS: `systemctl status itk.service` shows the STATUS line, and StatusText counts exactly the
# vhosts configured and the requests served.
# timeout: 60
. "$ITK_TESTS/lib.sh"

vhosts=$(cat /etc/itk.d/*.conf | grep -ci '^\[vhost\]')
status_re='^vhosts: ([0-9]+), acceptors: ([0-9]+) busy/([0-9]+) idle, workers: ([0-9]+), served: ([0-9]+), refused: ([0-9]+)'

step "a fresh start reports the configuration and nothing served"
expect_prop ActiveState inactive
activate
# The first request (from activate) is served too.
wait_for 10 "StatusText after one request" '[[ $(status_text) == "vhosts: $vhosts, acceptors: 0 busy/2 idle, workers: 0, served: 1, refused: 0, at limit: 0; cgroups: on" ]]'

step "requests on several vhosts, with 200 and 404 answers"
expect_http bob.test / 200 "bob's home page"
expect_http carol.test / 200 "carol's home page"
expect_http www.alice.test / 200 "alice's home page"
expect_http alice.test /missing.html 404
expect_http unknown.test / 200 "carol's home page"  # the Default vhost
# Two requests on one keep-alive connection count as two.
out=$(curl -sS --max-time 10 -H "Host: bob.test" -w '%{http_code}/%{num_connects} ' \
  -o "$SCEN_TMP/ka1" "$BASE_URL/" -o "$SCEN_TMP/ka2" "$BASE_URL/index.html")
expect_eq "$out" "200/1 200/0 " "two requests on one connection (status/new connections of each)"
served=8
wait_for 10 "StatusText to count $served requests" '[[ $(status_text) =~ $status_re && ${BASH_REMATCH[5]} == $served ]]'
text=$(status_text)
[[ $text =~ $status_re ]] || fail "StatusText does not have the documented form: '$text'"
expect_eq "${BASH_REMATCH[1]}" "$vhosts" "vhosts in StatusText ($text)"
expect_eq "$((BASH_REMATCH[2] + BASH_REMATCH[3]))" 2 "acceptors (busy + idle) in StatusText, StartServers = 2 ($text)"
expect_eq "${BASH_REMATCH[4]}" 0 "workers in StatusText once every connection is closed ($text)"
expect_eq "${BASH_REMATCH[6]}" 0 "refused in StatusText ($text)"

step "systemctl status shows the same line"
out=$(systemctl status itk.service --no-pager -n 0) || fail "systemctl status itk.service exited non-zero for an active service:" "$out"
expect_contains "$out" "Status: \"$text\"" "systemctl status itk.service"
expect_contains "$out" "Active: active (running)" "systemctl status itk.service"
