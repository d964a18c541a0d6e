# Reload: `systemctl reload itk` serves a new drop-in's vhost without a restart or a cut download; with a
# broken drop-in it fails, the old vhosts stay served, and the journal and STATUS name the file:line.
# timeout: 90
. "$ITK_TESTS/lib.sh"

activate
main=$(prop MainPID)

step "a slow download is in flight"
big_file /srv/www/alice/big.bin alice:alice 24
curl -sS --max-time 60 --limit-rate 6M -o "$SCEN_TMP/big.out" -w '%{http_code} %{size_download}' \
  -H "Host: alice.test" "$BASE_URL/big.bin" >"$SCEN_TMP/big.result" 2>&1 &
download=$!
wait_for 10 "the download to start" '[[ -s $SCEN_TMP/big.out ]]'

step "reload with a new valid drop-in"
install -d -o carol -g carol -m 0755 /srv/www/dave
put_file /srv/www/dave/index.html carol:carol 0644 "dave's new site"
cat >/etc/itk.d/50-dave.conf <<'EOF'
[vhost]
ServerName = dave.test
DocumentRoot = /srv/www/dave
AssignUserID = carol carol
EOF
journal_mark
out=$(systemctl reload itk.service 2>&1) || fail "systemctl reload itk.service failed for a valid configuration:" "$out"
expect_http dave.test / 200 "dave's new site"
expect_http alice.test / 200 "alice's home page"
expect_prop MainPID "$main"
wait_active
wait_for 10 "StatusText to count 6 vhosts" '[[ $(status_text) == "vhosts: 6,"* ]]'
kill -0 "$download" 2>/dev/null || fail "the download ended during the reload: $(cat "$SCEN_TMP/big.result")"

step "the in-flight download completes in full"
wait "$download" || fail "curl of big.bin failed across the reload: $(cat "$SCEN_TMP/big.result")"
expect_eq "$(cat "$SCEN_TMP/big.result")" "200 $((24 * 1048576))" "status and size of the download that spanned the reload"

step "reload with a broken drop-in is refused, and the old vhosts are still served"
cat >/etc/itk.d/60-broken.conf <<'EOF'
[vhost]
ServerName = broken.test
DocumentRoot = /srv/www/alice
AssignUserID = alice alice
MaxClientsVHost = many
EOF
journal_mark
if out=$(systemctl reload itk.service 2>&1); then
  fail "systemctl reload itk.service succeeded with a broken drop-in; expected it to fail (ExecReload runs itkd --check first)" "$out"
fi
echo "systemctl reload failed as expected: $out"
wait_active
expect_prop MainPID "$main"
expect_http dave.test / 200 "dave's new site"
expect_http alice.test / 200 "alice's home page"
expect_http broken.test / 200 "carol's home page"  # not a vhost: the Default one answers
wait_for 10 "the journal to name /etc/itk.d/60-broken.conf:5" 'journal_has "/etc/itk.d/60-broken.conf:5"'
journal_since | grep -F "60-broken.conf:5"
# ExecReload's `itkd --check` writes to the journal stream: its errors are at priority err.
journalctl -u itk.service -p err --after-cursor="$JOURNAL_CURSOR" --no-pager | grep -F "60-broken.conf:5" >/dev/null ||
  fail "journalctl -u itk -p err does not show why the reload failed:" "$(journalctl -u itk.service -p err --after-cursor="$JOURNAL_CURSOR" --no-pager)"

step "SIGHUP with the broken drop-in: itkd keeps the old config and says why in STATUS"
journal_mark
systemctl kill -s HUP --kill-whom=main itk.service
wait_for 10 "StatusText to report the failed reload" '[[ $(status_text) == *"reload failed: /etc/itk.d/60-broken.conf:5"* ]]'
status_text
wait_active
expect_prop MainPID "$main"
expect_http dave.test / 200 "dave's new site"
wait_for 10 "the journal to name /etc/itk.d/60-broken.conf:5" 'journal_has "/etc/itk.d/60-broken.conf:5"'

step "once the drop-in is fixed, a reload succeeds and clears the note"
rm /etc/itk.d/60-broken.conf
out=$(systemctl reload itk.service 2>&1) || fail "systemctl reload itk.service failed after the fix:" "$out"
wait_for 10 "StatusText without the reload note" '[[ $(status_text) == "vhosts: 6,"* && $(status_text) != *"reload failed"* ]]'
expect_prop MainPID "$main"
