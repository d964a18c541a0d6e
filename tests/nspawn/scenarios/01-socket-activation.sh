# Socket activation: after boot only itk.socket listens; the first connection starts itk.service and its
# request is answered, and a burst of first connections to a stopped service loses none of them.
# timeout: 60
. "$ITK_TESTS/lib.sh"

step "state after boot"
expect_eq "$(systemctl is-enabled itk.socket)" enabled "systemctl is-enabled itk.socket"
expect_prop ActiveState active itk.socket
expect_prop SubState listening itk.socket
expect_prop ActiveState inactive
expect_eq "$(pids_of itkd)" "" "itkd processes before the first connection"
expect_eq "$(getent passwd itk | cut -d: -f1)" itk "the itk user (created at boot by systemd-sysusers from itk's sysusers.d file)"

step "the first connection starts itk.service and is answered"
expect_http alice.test / 200 "alice's home page"
wait_active
expect_prop NRestarts 0
expect_prop TriggeredBy itk.socket

step "who runs what"
main=$(prop MainPID)
expect_eq "$(ps -o comm= -p "$main")" itkd "comm of MainPID $main"
expect_eq "$(ps -o user= -p "$main")" root "user of the master"
wait_for 10 "two acceptors" '[[ $(count_of itk-acceptor) == 2 ]]'
for a in $(pids_of itk-acceptor); do
  expect_eq "$(ps -o user= -p "$a")" itk "user of acceptor $a"
  expect_eq "$(ps -o ppid= -p "$a" | tr -d ' ')" "$main" "parent of acceptor $a"
  # No capability in any set: the process that parses client bytes can change nothing.
  for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
    expect_eq "$(awk -v k="$cap:" '$1 == k {print $2}' "/proc/$a/status")" 0000000000000000 "$cap of acceptor $a"
  done
  expect_eq "$(awk '$1 == "NoNewPrivs:" {print $2}' "/proc/$a/status")" 1 "NoNewPrivs of acceptor $a"
done
expect_eq "$(count_of itk-spawner)" 1 "spawners"
sp=$(pids_of itk-spawner)
expect_eq "$(ps -o user= -p "$sp")" itk "user of the spawner"
expect_eq "$(awk '$1 == "CapEff:" {print $2}' "/proc/$sp/status")" 00000000008000c0 \
  "CapEff of the spawner (CAP_SETGID, CAP_SETUID, CAP_SYS_NICE)"

step "a burst of connections to a stopped service: none is lost"
systemctl stop itk.service
expect_prop ActiveState inactive
expect_prop ActiveState active itk.socket
for i in $(seq 1 8); do
  curl -sS --max-time 10 -o "$SCEN_TMP/burst.$i" -w '%{http_code}' -H "Host: bob.test" "$BASE_URL/" >"$SCEN_TMP/burst.$i.status" 2>&1 || true &
done
wait
for i in $(seq 1 8); do
  expect_eq "$(cat "$SCEN_TMP/burst.$i.status")" 200 "status of burst request $i"
  expect_eq "$(cat "$SCEN_TMP/burst.$i")" "bob's home page" "body of burst request $i"
done
wait_active
