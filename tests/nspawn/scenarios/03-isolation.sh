# Isolation with real users: a tenant's 0640 file is served on its own vhosts only (also through symlinks or a
# DocumentRoot that contains it), root's 0600 files never; a worker runs as its vhost's user, no capabilities.
# timeout: 60
. "$ITK_TESTS/lib.sh"

secret_a="alice's secret"
secret_b="bob's secret"
secret_r="root's secret"
put_file /srv/www/alice/private.html alice:alice 0640 "$secret_a"
put_file /srv/www/bob/private.html bob:bob 0640 "$secret_b"
put_file /srv/www/alice/root-only.html root:root 0600 "$secret_r"
put_file /srv/www/carol/root-only.html root:root 0600 "$secret_r"
# Symlinks as each tenant would plant them: absolute (leaves the DocumentRoot) and relative (stays inside
# the /srv/www of the *-view vhosts, where only the uid can refuse).
ln -s /srv/www/alice/private.html /srv/www/bob/abs-alice.html
ln -s ../alice/private.html /srv/www/bob/rel-alice.html
ln -s /srv/www/bob/private.html /srv/www/alice/abs-bob.html
ln -s ../bob/private.html /srv/www/alice/rel-bob.html
chown -h bob:bob /srv/www/bob/abs-alice.html /srv/www/bob/rel-alice.html
chown -h alice:alice /srv/www/alice/abs-bob.html /srv/www/alice/rel-bob.html

# refused HOST PATH SECRET: any 4xx is fine as long as the secret does not come back.
refused() {
  http "$1" "$2"
  if [[ ! $HTTP_STATUS =~ ^4[0-9][0-9]$ ]]; then
    fail "GET http://$1$2 (uid $(id -u "${1%%[-.]*}" 2>/dev/null || echo ?)): expected a refusal (403/404), got $HTTP_STATUS" "$(http_describe)"
  fi
  expect_not_contains "$(cat "$HTTP_BODY")" "$3" "body of the refusal of http://$1$2"
  echo "GET http://$1$2 -> $HTTP_STATUS (refused)"
}

activate

step "each tenant reads its own 0640 file"
expect_http alice.test /private.html 200 "$secret_a"
expect_http bob.test /private.html 200 "$secret_b"
expect_http alice-view.test /alice/private.html 200 "$secret_a"
expect_http bob-view.test /bob/private.html 200 "$secret_b"

step "alice's file is refused on bob's vhosts"
refused bob.test /abs-alice.html "$secret_a"
refused bob.test /rel-alice.html "$secret_a"
refused bob-view.test /alice/private.html "$secret_a"
refused bob-view.test /bob/rel-alice.html "$secret_a"

step "bob's file is refused on alice's vhosts"
refused alice.test /abs-bob.html "$secret_b"
refused alice.test /rel-bob.html "$secret_b"
refused alice-view.test /bob/private.html "$secret_b"
refused alice-view.test /alice/rel-bob.html "$secret_b"

step "root's 0600 files are never served"
for target in alice.test:/root-only.html carol.test:/root-only.html alice-view.test:/alice/root-only.html \
  bob-view.test:/carol/root-only.html; do
  refused "${target%%:*}" "${target#*:}" "$secret_r"
done

step "a worker runs as its vhost's user, without capabilities"
big_file /srv/www/alice/big.bin alice:alice 16
curl -sS --max-time 30 --limit-rate 2M -o /dev/null -H "Host: alice.test" "$BASE_URL/big.bin" &
wait_for 10 "a worker serving big.bin" '[[ $(count_of itk-worker) -ge 1 ]]'
worker=$(pids_of itk-worker | head -n 1)
expect_eq "$(ps -o uid=,gid= -p "$worker" | xargs)" "$(id -u alice) $(id -g alice)" "uid and gid of worker $worker"
status=/proc/$worker/status
expect_eq "$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "$status")" "$(for _ in 1 2 3 4; do id -u alice; done | xargs)" "real, effective, saved and fs uid of the worker"
groups=$(awk '/^Groups:/ { $1 = ""; print }' "$status" | xargs)
[[ -z $groups || $groups == "$(id -g alice)" ]] ||
  fail "supplementary groups of the worker: expected none or alice's own ($(id -g alice)), got '$groups'"
# CapBnd is left out: clearing the bounding set needs CAP_SETPCAP, which the acceptor (the worker's parent)
# does not have; with nothing permitted and no_new_privs, no exec can raise a capability from it.
for cap in CapInh CapPrm CapEff CapAmb; do
  expect_eq "$(awk -v c="$cap:" '$1 == c { print $2 }' "$status")" 0000000000000000 "$cap of the worker"
done
expect_eq "$(awk '/^NoNewPrivs:/ { print $2 }' "$status")" 1 "NoNewPrivs of the worker"
kill %1 2>/dev/null || true
