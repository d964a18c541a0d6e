# `itkd --check` agrees with the service: on the good config it passes and counts the vhosts the service
# reports; on a broken one it fails naming the same file:line that stops itk.service from starting.
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

step "broken config: --check fails naming file:line, and the service refuses to start on it"
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
if out=$(systemctl start itk.service 2>&1); then
  fail "systemctl start itk.service succeeded on a configuration that itkd --check refuses" "$out"
fi
echo "systemctl start failed as expected: $out"
wait_for 10 "the journal to name /etc/itk.d/70-broken.conf:4" 'journal_has "/etc/itk.d/70-broken.conf:4"'
journal=$(journal_since)
echo "$journal" | grep -F "70-broken.conf:4"
# Every error --check printed is what the service logged when it refused to start.
while read -r line; do
  expect_contains "$journal" "$line" "journal of the failed start, against $itkd --check"
done < <(echo "$checked_out" | grep '^/etc/')
expect_ne "$(prop ActiveState)" active "itk.service ActiveState with the broken drop-in"

step "fixed again: --check passes and the socket starts the service on the next connection"
rm /etc/itk.d/70-broken.conf
out=$("$itkd" --check 2>&1) || fail "$itkd --check failed after removing the broken drop-in:" "$out"
# Restart=on-failure may be retrying already; either way the next connection is served by a good start.
systemctl reset-failed itk.service
systemctl start itk.socket
expect_http alice.test / 200 "alice's home page"
wait_active
expect_match "$(status_text)" "^vhosts: $checked," "vhosts in StatusText after the fix"
