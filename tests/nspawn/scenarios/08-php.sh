# CGI and PHP as the vhost's real user: with `Handler = .php /usr/bin/php-cgi` on alice's and bob's vhosts a
# PHP script sees alice's uid on alice.test and bob's on bob.test, alice's PHP cannot read bob's 0640 file,
# a shell CGI runs as the user with its groups, no capability and no_new_privs, and its stderr reaches the
# journal tagged with the vhost.
# timeout: 60
. "$ITK_TESTS/lib.sh"

php=/usr/bin/php-cgi
[[ -x $php ]] || skip "$php not installed (Debian package php-cgi; tools/test installs it)"

for u in alice bob; do
  cat >>/etc/itk.d/10-$u.conf <<EOF
CGI = .cgi
Handler = .php $php
EOF
  put_file /srv/www/$u/whoami.php $u:$u 0644 '<?php echo posix_getuid(), " ", posix_getgid(), "\n";'
  put_file /srv/www/$u/php-private.html $u:$u 0640 "$u's private page"
  # false, not an exception: file_get_contents warns (on stderr, so into the journal) and returns false.
  put_file /srv/www/$u/peek.php $u:$u 0644 '<?php
$s = @file_get_contents($_GET["f"]);
echo $s === false ? "refused" : "read: $s", "\n";'
  put_file /srv/www/$u/id.cgi $u:$u 0755 '#!/bin/sh
printf "Content-Type: text/plain\n\n"
echo "$(id -un) $(id -u) $(id -g) $(id -G)"
awk '\''$1 ~ /^(CapPrm|CapEff|NoNewPrivs):$/ { printf "%s %s\n", $1, $2 }'\'' /proc/$$/status
echo "$SCRIPT_FILENAME"
echo "itk-nspawn-stderr-of-$(id -un)" >&2'
done

# The first request starts itk.service with the Handler lines in place.
activate

step "php-cgi runs as the vhost's user"
expect_http alice.test /whoami.php 200 "$(id -u alice) $(id -g alice)"
expect_http bob.test /whoami.php 200 "$(id -u bob) $(id -g bob)"
expect_ne "$(id -u alice)" "$(id -u bob)" "uids of alice and bob"

step "each tenant's PHP reads its own 0640 file, and not the other's"
expect_http alice.test "/peek.php?f=/srv/www/alice/php-private.html" 200 "read: alice's private page"
expect_http bob.test "/peek.php?f=/srv/www/bob/php-private.html" 200 "read: bob's private page"
expect_http alice.test "/peek.php?f=/srv/www/bob/php-private.html" 200 "refused"
expect_http bob.test "/peek.php?f=/srv/www/alice/php-private.html" 200 "refused"

step "a shell CGI runs as the user, with no capability and no_new_privs; its stderr is in the journal"
journal_mark
for u in alice bob; do
  expect_http $u.test /id.cgi 200 "$u $(id -u $u) $(id -g $u) $(id -G $u)
CapPrm: 0000000000000000
CapEff: 0000000000000000
NoNewPrivs: 1
/srv/www/$u/id.cgi"
done
wait_for 10 "alice's CGI stderr in the journal, tagged with alice.test" \
  'journal_since | grep -E "worker alice\.test\[[0-9]+\]: /id\.cgi: itk-nspawn-stderr-of-alice"'
wait_for 10 "bob's CGI stderr in the journal, tagged with bob.test" \
  'journal_since | grep -E "worker bob\.test\[[0-9]+\]: /id\.cgi: itk-nspawn-stderr-of-bob"'

step "keep-alive: two PHP requests on one connection"
out=$(curl -sS --max-time "$HTTP_TIMEOUT" -H "Host: alice.test" "$BASE_URL/whoami.php" "$BASE_URL/whoami.php" \
  -w '%{num_connects}\n')
expect_eq "$out" "$(id -u alice) $(id -g alice)
1
$(id -u alice) $(id -g alice)
0" "two PHP responses and the new connections curl opened (1, then 0: the second reused the first)"
