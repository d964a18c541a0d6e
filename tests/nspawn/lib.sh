# Helpers sourced by every scenario of the nspawn suite, inside the booted test container: HTTP requests
# with curl, bounded waits, expectations that print what was expected and what came, itk.service state.
#
# A scenario exits 0 when it passed, 77 when it cannot run here (`skip REASON`), anything else when it
# failed; `fail` and the expect_* helpers print "FAIL: ..." lines, which the host shows as TAP diagnostics.

set -eEuo pipefail
shopt -s inherit_errexit
# A command failing outside an expectation still says which one, so no failure is silent. Inside $(...)
# the failure reaches the enclosing command, which reports it.
trap 'rc=$?; ((BASH_SUBSHELL > 0)) || echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO: \`$BASH_COMMAND\` exited with status $rc"' ERR

: "${ITK_PORT:?ITK_PORT is not set: scenarios run under tests/nspawn/runner.sh}"
BASE_URL=http://127.0.0.1:$ITK_PORT
HTTP_TIMEOUT=${HTTP_TIMEOUT:-10}

SCEN_TMP=$(mktemp -d /tmp/itk-scenario.XXXXXX)
# Background jobs a scenario leaves (slow downloads) must not outlive it: the runner's next reset stops
# itk.service, and a client still attached would only slow that down.
cleanup_scenario() {
  local pids
  pids=$(jobs -pr) || true
  # shellcheck disable=SC2086 # one pid per word
  [[ -z $pids ]] || kill $pids 2>/dev/null || true
  rm -rf "$SCEN_TMP"
}
trap cleanup_scenario EXIT

step() { echo "== $*"; }

fail() {
  local line
  for line in "$@"; do echo "FAIL: $line"; done
  exit 1
}

# skip REASON: the scenario cannot run in this container (e.g. a controller is not delegated).
skip() {
  echo "SKIP: $*"
  exit 77
}

# ---- expectations ---------------------------------------------------------------------------------------

expect_eq() {  # ACTUAL EXPECTED WHAT
  [[ $1 == "$2" ]] || fail "$3: expected '$2', got '$1'"
}

expect_ne() {  # ACTUAL UNWANTED WHAT
  [[ $1 != "$2" ]] || fail "$3: expected anything but '$2', got it"
}

expect_match() {  # ACTUAL EXTENDED-REGEX WHAT
  [[ $1 =~ $2 ]] || fail "$3: expected a match for /$2/, got '$1'"
}

expect_contains() {  # TEXT NEEDLE WHAT
  [[ $1 == *"$2"* ]] || fail "$3: expected to contain '$2', got:" "$1"
}

expect_not_contains() {  # TEXT NEEDLE WHAT
  [[ $1 != *"$2"* ]] || fail "$3: expected not to contain '$2', got:" "$1"
}

# wait_for SECONDS WHAT 'CONDITION': evaluates the shell text CONDITION every 0.1 s until it succeeds (it is
# evaluated anew each time, so $(...) inside single quotes is fresh); fails naming WHAT and what the last
# evaluation printed when SECONDS pass.
wait_for() {
  local seconds=$1 what=$2 cond=$3
  local deadline=$((SECONDS + seconds)) out=""
  while :; do
    if out=$(eval "$cond" 2>&1); then
      return 0
    fi
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for $what; last check ($cond) said:" "${out:-<nothing>}"
    sleep 0.1
  done
}

count_of() { pgrep -cx "$1" || true; }

# ---- HTTP -----------------------------------------------------------------------------------------------

HTTP_N=0
# http HOST PATH [CURL-ARGS...]: one GET (HEAD etc. via curl args) to itk on 127.0.0.1 with that Host.
# Sets HTTP_STATUS (000 when no response came), HTTP_BODY (file with the body), HTTP_HEADERS (file),
# HTTP_SIZE (bytes of body received) and HTTP_ERROR (curl's message, if any). Never fails by itself.
http() {
  local host=$1 path=$2
  shift 2
  HTTP_N=$((HTTP_N + 1))
  HTTP_BODY=$SCEN_TMP/body.$HTTP_N
  HTTP_HEADERS=$SCEN_TMP/headers.$HTTP_N
  local out rc=0
  out=$(curl -sS --max-time "$HTTP_TIMEOUT" -o "$HTTP_BODY" -D "$HTTP_HEADERS" -w '%{http_code} %{size_download}' \
    -H "Host: $host" "$@" "$BASE_URL$path" 2>"$SCEN_TMP/err.$HTTP_N") || rc=$?
  touch "$HTTP_BODY" "$HTTP_HEADERS"
  HTTP_STATUS=${out%% *}
  HTTP_SIZE=${out##* }
  [[ -n $HTTP_STATUS ]] || HTTP_STATUS=000
  HTTP_ERROR=$(cat "$SCEN_TMP/err.$HTTP_N")
  ((rc == 0)) || HTTP_ERROR="curl exit status $rc: $HTTP_ERROR"
}

# A short account of the last response for failure messages.
http_describe() {
  echo "response headers:"
  sed 's/^/    /' "$HTTP_HEADERS"
  echo "body (first 300 bytes):"
  head -c 300 "$HTTP_BODY" | sed 's/^/    /'
  echo
  [[ -z $HTTP_ERROR ]] || echo "curl: $HTTP_ERROR"
}

# expect_http HOST PATH STATUS [BODY]: the request is answered with STATUS (a regex such as '40[34]'
# is allowed) and, when given, exactly BODY.
expect_http() {
  local host=$1 path=$2 want=$3
  http "$host" "$path"
  if [[ ! $HTTP_STATUS =~ ^($want)$ ]]; then
    fail "GET http://$host$path: expected status $want, got $HTTP_STATUS" "$(http_describe)"
  fi
  if (($# > 3)) && [[ $(cat "$HTTP_BODY") != "$4" ]]; then
    fail "GET http://$host$path: expected body '$4', got:" "$(http_describe)"
  fi
  echo "GET http://$host$path -> $HTTP_STATUS"
}

# ---- fixtures -------------------------------------------------------------------------------------------

# put_file PATH OWNER:GROUP MODE CONTENT
put_file() {
  printf '%s' "$4" >"$1"
  chown "$2" "$1"
  chmod "$3" "$1"
}

# big_file PATH OWNER:GROUP MiB: a file of MiB mebibytes for slow downloads (zeros: only the length is checked).
big_file() {
  head -c "$(($3 * 1048576))" /dev/zero >"$1"
  chown "$2" "$1"
  chmod 0644 "$1"
}

# ---- itk.service ----------------------------------------------------------------------------------------

prop() {  # NAME [UNIT]: one property of a unit (default itk.service)
  systemctl show -P "$1" "${2:-itk.service}"
}

expect_prop() {  # NAME EXPECTED [UNIT]
  expect_eq "$(prop "$1" "${3:-itk.service}")" "$2" "${3:-itk.service} $1"
}

is_active() { [[ $(prop ActiveState "${1:-itk.service}") == active ]]; }

# wait_active [SECONDS]: itk.service is active/running. systemd learns READY=1 (after a start or a reload)
# asynchronously, so a request can be answered a moment before the state says so.
wait_active() {
  wait_for "${1:-10}" "itk.service to be active (running)" '[[ $(prop ActiveState)/$(prop SubState) == active/running ]]'
}

status_text() { prop StatusText; }

# The pids of itk processes by role name (comm): itkd, itk-acceptor, itk-worker; one per line.
pids_of() { pgrep -x "$1" || true; }

# journal_mark; ...; journal_since: what itk.service and its socket logged after the mark.
journal_mark() {
  journalctl --sync 2>/dev/null || true
  JOURNAL_CURSOR=$(journalctl -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
}

journal_since() {
  journalctl --sync 2>/dev/null || true
  if [[ -n ${JOURNAL_CURSOR:-} ]]; then
    journalctl -u itk.service -u itk.socket --after-cursor="$JOURNAL_CURSOR" --no-pager -o short-precise
  else
    journalctl -u itk.service -u itk.socket --no-pager -o short-precise
  fi
}

# journal_has TEXT: the journal since the mark contains TEXT (for wait_for).
journal_has() { journal_since | grep -qF -- "$1"; }

# Sends the first request when itk.service is not running yet, so the scenario starts from a running service.
activate() {
  expect_http alice.test / 200 "alice's home page"
  wait_active 10
}
