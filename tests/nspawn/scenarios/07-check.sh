# `itkd --check` agrees with the service: on the good config it passes and counts the vhosts the service
# reports; on a broken one it fails naming the same file:line that keeps itk.service in standby, where
# clients get 503 at once, the errors are logged once, and a reload with the fix starts serving.
# timeout: 60
. "$ITK_TESTS/lib.sh"

itkd=$(systemctl show -P ExecStart itk.service | sed -n 's/.*path=\([^ ;]*\).*/\1/p')
[[ -x $itkd ]] || fail "cannot find itkd from itk.service's ExecStart (got '$itkd')"

step "good config: --check passes and counts what the service serves"
out=$("$itkd" --check 2>&1) || fail "$itkd --check failed on the boot configuration:" "$out"
echo "$out"
[[ $out =~ ([0-9]+)\ vhost ]] || fail "$itkd --check does not say how many vhosts: '$out'"
checked=${BASH_REMATCH[1]}
activate
wait_for 10 "StatusText" '[[ -n $(status_text) ]]'
expect_match "$(status_text)" "^vhosts: $checked," "vhosts in StatusText against '$itkd --check' ($checked)"

step "broken config: --check fails naming file:line, and the service starts in standby"
cat >/etc/itk.d/70-broken.conf <<'EOF'
[vhost]
ServerName = broken.test
DocumentRoot = /srv/www/alice
AssignUserID = nosuchuser nosuchuser
EOF
if out=$("$itkd" --check 2>&1); then
  fail "$itkd --check passed a drop-in with an unknown user:" "$out"
fi
echo "$out"
checked_out=$out
expect_contains "$out" "/etc/itk.d/70-broken.conf:4" "$itkd --check on the broken drop-in"
journal_mark
systemctl stop itk.service
out=$(systemctl start itk.service 2>&1) || fail "systemctl start itk.service failed; expected it to start in standby on a broken configuration" "$out"
wait_for 10 "StatusText to name /etc/itk.d/70-broken.conf:4" '[[ $(status_text) == "configuration error: /etc/itk.d/70-broken.conf:4"* ]]'
status_text
main=$(prop MainPID)
step "in standby, clients are answered at once: 503 with Retry-After"
http alice.test /
expect_eq "$HTTP_STATUS" 503 "status of a request while the configuration does not load"
expect_contains "$(cat "$HTTP_HEADERS")" "Retry-After" "the standby answer"
wait_for 10 "the journal to name /etc/itk.d/70-broken.conf:4" 'journal_has "/etc/itk.d/70-broken.conf:4"'
journal=$(journal_since)
echo "$journal" | grep -F "70-broken.conf:4"
# Every error --check printed is what the service logged when its configuration did not load.
while read -r line; do
  expect_contains "$journal" "$line" "journal of the start in standby, against $itkd --check"
done < <(echo "$checked_out" | grep '^/etc/')
journalctl -u itk.service -p err --after-cursor="$JOURNAL_CURSOR" --no-pager | grep -F "70-broken.conf:4" >/dev/null ||
  fail "journalctl -u itk -p err does not show the configuration error"
step "the errors are said once, not at every retry"
said=$(journal_since | grep -cF "70-broken.conf:4" || true)
sleep 7  # retries at 2 s, then 4 s
expect_eq "$(journal_since | grep -cF "70-broken.conf:4" || true)" "$said" "journal lines naming 70-broken.conf:4 after 7 s more of standby"

step "fixed again: a reload leaves standby and serves, with the same main process"
rm /etc/itk.d/70-broken.conf
out=$("$itkd" --check 2>&1) || fail "$itkd --check failed after removing the broken drop-in:" "$out"
out=$(systemctl reload itk.service 2>&1) || fail "systemctl reload itk.service failed after the fix:" "$out"
wait_for 10 "StatusText to count the vhosts" '[[ $(status_text) == "vhosts: $checked,"* ]]'
expect_http alice.test / 200 "alice's home page"
expect_prop MainPID "$main"
