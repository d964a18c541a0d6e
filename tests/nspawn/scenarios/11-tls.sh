# HTTPS through itk-tls.socket: each vhost's certificate by SNI and the default one without, content served
# as the vhost's user, Host/SNI mismatch 421, TLS 1.0/1.1 refused, a silent client dropped at
# RequestReadTimeout, a CGI running as alice reaching neither the key files nor its worker's memory,
# no private key byte in a worker's memory (root reads it), and a renewed certificate after a reload.
# timeout: 120
. "$ITK_TESTS/lib.sh"

command -v openssl >/dev/null || skip "openssl not installed (Debian package openssl)"

tls=/etc/itk/tls
install -d -m 0700 "$tls"
# make_cert NAME [FILE]: a self-signed certificate for NAME with its key, root-only like certbot's.
make_cert() {
  local file=${2:-$1}
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/$file.key" -out "$tls/$file.pem" -subj "/CN=$1" \
    -addext "subjectAltName=DNS:$1" -days 30 2>/dev/null || fail "openssl req for $1 failed"
  chmod 0600 "$tls/$file.key"
}
for n in alice.test bob.test default.test; do make_cert "$n"; done

cat >>/etc/itk.conf <<EOF
RequestReadTimeout = 3
KeepAliveTimeout = 30
TLSCertificateFile = $tls/default.test.pem
TLSCertificateKeyFile = $tls/default.test.key
EOF
for u in alice bob; do
  cat >>/etc/itk.d/10-$u.conf <<EOF
TLSCertificateFile = $tls/$u.test.pem
TLSCertificateKeyFile = $tls/$u.test.key
EOF
done
echo "CGI = .cgi" >>/etc/itk.d/10-alice.conf
put_file /srv/www/alice/private.html alice:alice 0600 "alice's private page over https"
put_file /srv/www/alice/probe.cgi alice:alice 0755 '#!/bin/sh
printf "Content-Type: text/plain\n\n"
for f in /etc/itk/tls/alice.test.key /etc/itk/tls/bob.test.key /proc/$PPID/mem /proc/$PPID/environ /proc/$PPID/maps; do
  if (: <"$f") 2>/dev/null; then echo "OPENED $f"; else echo "denied $f"; fi
done
echo "fds: $(ls /proc/self/fd | tr "\n" " ")"'

tls_port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
install -d -m 0755 /etc/systemd/system/itk-tls.socket.d
cat >/etc/systemd/system/itk-tls.socket.d/port.conf <<EOF
[Socket]
ListenStream=
ListenStream=127.0.0.1:$tls_port
EOF
# The runner restores the units after the scenario, but a socket still listening would keep passing an
# "https" descriptor to the next scenario's itk, whose configuration has no certificate.
trap 'systemctl disable --now itk-tls.socket >/dev/null 2>&1 || true; cleanup_scenario' EXIT
systemctl daemon-reload
systemctl enable --now itk-tls.socket || fail "systemctl enable --now itk-tls.socket failed" \
  "$(systemctl status itk-tls.socket --no-pager 2>&1)"

# https HOST PATH [CURL-ARGS...]: as http, over TLS with SNI HOST, verified against HOST's own certificate.
https() {
  local host=$1 path=$2 out rc=0
  shift 2
  HTTP_N=$((HTTP_N + 1))
  HTTP_BODY=$SCEN_TMP/body.$HTTP_N
  HTTP_HEADERS=$SCEN_TMP/headers.$HTTP_N
  out=$(curl -sS --max-time "$HTTP_TIMEOUT" -o "$HTTP_BODY" -D "$HTTP_HEADERS" -w '%{http_code}' \
    --resolve "$host:$tls_port:127.0.0.1" --cacert "$tls/$host.pem" "$@" "https://$host:$tls_port$path" \
    2>"$SCEN_TMP/err.$HTTP_N") || rc=$?
  touch "$HTTP_BODY" "$HTTP_HEADERS"
  HTTP_STATUS=${out:-000}
  HTTP_ERROR=$(cat "$SCEN_TMP/err.$HTTP_N")
  ((rc == 0)) || HTTP_ERROR="curl exit status $rc: $HTTP_ERROR"
}
subject_of() {  # SNI-ARGS...: the CN of the certificate served
  openssl s_client -connect "127.0.0.1:$tls_port" "$@" </dev/null 2>/dev/null | sed -n 's/^subject=.*CN *= *\([^ ,\/]*\).*/\1/p'
}

activate

step "each vhost's certificate by SNI, the default one without SNI"
expect_eq "$(subject_of -servername alice.test)" alice.test "certificate for SNI alice.test"
expect_eq "$(subject_of -servername bob.test)" bob.test "certificate for SNI bob.test"
expect_eq "$(subject_of -noservername)" default.test "certificate without SNI"

step "curl over HTTPS gets each vhost's content as its user"
https alice.test /private.html
expect_eq "$HTTP_STATUS" 200 "GET https://alice.test/private.html (0600, alice's)"
expect_eq "$(cat "$HTTP_BODY")" "alice's private page over https" "body of https://alice.test/private.html"
https bob.test /
expect_eq "$HTTP_STATUS" 200 "GET https://bob.test/"
expect_eq "$(cat "$HTTP_BODY")" "bob's home page" "body of https://bob.test/"
https bob.test /../alice/private.html --path-as-is
expect_ne "$HTTP_STATUS" 200 "alice's private file through bob's vhost"

step "Host naming another vhost than SNI is 421"
https alice.test / -H "Host: bob.test"
expect_eq "$HTTP_STATUS" 421 "SNI alice.test with Host bob.test"

step "TLS 1.0 and 1.1 are refused"
for v in -tls1 -tls1_1; do
  out=$(openssl s_client -connect "127.0.0.1:$tls_port" -servername alice.test $v -cipher DEFAULT@SECLEVEL=0 </dev/null 2>&1) &&
    fail "openssl s_client $v: expected the handshake to fail" "$out"
  expect_contains "$out" "alert protocol version" "openssl s_client $v"
done

step "a client that opens TCP and sends nothing is dropped at RequestReadTimeout"
start=$SECONDS
exec 5<>"/dev/tcp/127.0.0.1/$tls_port"
timeout 10 cat <&5 >/dev/null || fail "the silent connection was still open after 10 s (RequestReadTimeout = 3)"
exec 5<&-
expect_eq "$((SECONDS - start <= 6))" 1 "silent connection closed within RequestReadTimeout (took $((SECONDS - start)) s)"

step "a CGI running as alice reaches neither the keys nor its worker's memory"
https alice.test /probe.cgi
expect_eq "$HTTP_STATUS" 200 "GET https://alice.test/probe.cgi"
echo "$(cat "$HTTP_BODY")"
expect_not_contains "$(cat "$HTTP_BODY")" "OPENED" "what the CGI could open"
expect_contains "$(cat "$HTTP_BODY")" "fds: 0 1 2 3 " "the descriptors of a program the CGI runs (stdio and ls's own)"

step "no private key byte in a worker's memory, all of them in the key process"
(printf 'GET / HTTP/1.1\r\nHost: alice.test\r\n\r\n'; sleep 20) |
  openssl s_client -connect "127.0.0.1:$tls_port" -servername alice.test -quiet >/dev/null 2>&1 &
wait_for 10 "a worker running as alice" '[[ -n $(pgrep -u alice -x itk-worker) ]]'
worker=$(pgrep -u alice -x itk-worker | head -n 1)
keys=$(pgrep -x itk-keys | head -n 1)
[[ -n $keys ]] || fail "no itk-keys process"
scan=$(python3 - "$tls/alice.test.key" "$keys" "$worker" $(pgrep -x itk-acceptor) "$(prop MainPID)" <<'EOF'
import re, subprocess, sys
text = subprocess.run(["openssl", "pkey", "-in", sys.argv[1], "-text", "-noout"], capture_output=True, text=True).stdout
needles = []
for name in ("prime1", "prime2", "privateExponent"):
    m = re.search(rf"^{name}:\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.MULTILINE)
    value = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1))).lstrip(b"\0")
    needles += [value[:32], value[::-1][:32]]
for pid in sys.argv[2:]:
    hits = 0
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if "rw" not in f[1] or hi - lo > (1 << 30):
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, OverflowError, ValueError):
                continue
            hits += sum(n in data for n in needles)
    print(pid, hits)
EOF
)
echo "$scan"
first=1
while read -r pid hits; do
  if ((first)); then
    ((hits > 0)) || fail "control: the key process $pid holds none of alice's key bytes; the scan proves nothing"
    first=0
  else
    expect_eq "$hits" 0 "private key bytes in $(cat /proc/$pid/comm) $pid"
  fi
done <<<"$scan"

step "a renewed certificate is served after systemctl reload"
old=$(openssl s_client -connect "127.0.0.1:$tls_port" -servername alice.test </dev/null 2>/dev/null | openssl x509 -noout -fingerprint)
make_cert alice.test
out=$(systemctl reload itk.service 2>&1) || fail "systemctl reload itk.service failed" "$out"
wait_active
new=$(openssl s_client -connect "127.0.0.1:$tls_port" -servername alice.test </dev/null 2>/dev/null | openssl x509 -noout -fingerprint)
expect_eq "$new" "$(openssl x509 -in "$tls/alice.test.pem" -noout -fingerprint)" "certificate after the reload"
expect_ne "$new" "$old" "certificate after the renewal and reload"
https alice.test /private.html
expect_eq "$HTTP_STATUS" 200 "GET https://alice.test/private.html with the renewed certificate"
