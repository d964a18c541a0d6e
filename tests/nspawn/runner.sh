#!/bin/bash
# Runs inside the test container, started by itk-nspawn-test.service once the system is up: runs every
# scenario of /etc/itk-test/plan in order under its timeout, records each result in /results, puts itk
# back in its boot state between scenarios; the unit powers the container off when this script ends.
#
# /results/summary gets one line per scenario: "NAME pass|fail|skip|timeout SECONDS [REASON]";
# /results/NAME.log holds the scenario's output and, when it failed, the journal of itk.service.
set -uo pipefail

tests=/itk-tests
results=/results
config=/etc/itk-test
# shellcheck source=/dev/null
. "$config/env"  # ITK_PORT
export ITK_PORT ITK_TESTS=$tests

# Unit files and drop-ins as booted, so that a scenario may change them (hardening, ports) for itself.
unit_dirs=(/etc/systemd/system /run/systemd/system)
units_saved=/run/itk-test/units
for d in "${unit_dirs[@]}"; do
  mkdir -p "$d" "$units_saved$d"
  cp -a "$d/." "$units_saved$d/"
done

# The state a scenario starts from: the boot config, itk.service stopped, itk.socket listening. The first
# scenario gets the container exactly as booted (socket activation checks that nothing started itk yet).
reset_itk() {
  if ! timeout 60 systemctl stop itk.service; then
    echo "runner: stopping itk.service failed or took over 60 s; killing it"
    systemctl kill -s KILL itk.service || true
  fi
  rm -rf /etc/itk.d /etc/itk.conf
  cp -a "$config/baseline/itk.d" /etc/itk.d
  cp -a "$config/baseline/itk.conf" /etc/itk.conf
  local d changed=0
  for d in "${unit_dirs[@]}"; do
    if ! diff -r -q --no-dereference "$units_saved$d" "$d" >/dev/null 2>&1; then
      changed=1
      find "$d" -mindepth 1 -delete
      cp -a "$units_saved$d/." "$d/"
    fi
  done
  if ((changed)); then
    systemctl daemon-reload
    systemctl stop itk.socket 2>/dev/null || true  # so that a changed ListenStream takes effect
  fi
  systemctl reset-failed itk.service itk.socket 2>/dev/null || true
  systemctl start itk.socket || echo "runner: itk.socket does not start: $(systemctl status itk.socket --no-pager 2>&1)"
}

# The reason of a skip: the last "SKIP: " line, else the first line of output.
skip_reason() {
  local r
  r=$(sed -n 's/^SKIP: //p' "$1" | tail -n 1)
  [[ -n $r ]] || r=$(head -n 1 "$1")
  echo "${r:-no reason given}"
}

first=1
while read -r name limit; do
  [[ -n $name ]] || continue
  ((first)) || reset_itk
  first=0
  log=$results/$name.log
  echo "$name" >"$results/current"
  cursor=$(journalctl -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
  start=$(date +%s%N)
  # timeout runs the scenario in a process group of its own and signals the whole group.
  timeout -k 5 "$limit" bash "$tests/scenarios/$name.sh" >"$log" 2>&1 </dev/null
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  secs=$((ms / 1000)).$((ms % 1000 / 100))
  case $rc in
    0) result=pass reason="" ;;
    77) result=skip reason=$(skip_reason "$log") ;;
    124 | 137) result=timeout reason="did not finish within its ${limit}s timeout" ;;
    *) result=fail reason=$(sed -n 's/^FAIL: //p' "$log" | head -n 1) ;;
  esac
  if [[ $result == fail || $result == timeout ]]; then
    [[ $result == fail && -n $reason ]] || echo "FAIL: ${reason:-exited with status $rc and gave no FAIL line}" >>"$log"
    {
      echo "---- systemctl status itk.socket itk.service"
      systemctl status itk.socket itk.service --no-pager -n 0 2>&1
      echo "---- journal of itk.service and itk.socket during $name"
      journalctl --sync 2>/dev/null
      journalctl -u itk.service -u itk.socket --after-cursor="$cursor" --no-pager -o short-precise -n 150 2>&1
    } >>"$log"
  fi
  echo "$name $result $secs $reason" >>"$results/summary"
done <"$config/plan"

rm -f "$results/current"
# tests/nspawn/run --hold: stay up for a person to look around until they release the container.
if [[ -e $config/hold ]]; then
  touch "$results/held"
  while [[ ! -e $results/release ]]; do sleep 1; done
fi
# The whole journal helps when the harness itself misbehaves; it stays on the host only with --keep.
journalctl -b --no-pager -o short-precise >"$results/journal.txt" 2>&1
sync
exit 0
