// The shared last step of run_cgi and run_fastcgi: error answers, local redirects, the end of a
// relayed response and the keep-alive decision, from how the relay stopped.
#include "script/script_finish.h"

#include "http/body_decoder.h"
#include "sys/log.h"

namespace itk {

bool decode_body(BodyDecoder& body, std::string& buffered, std::string& out, Relay& relay) {
  size_t used = 0;
  BodyDecoder::State st = body.feed(buffered, out, used);
  buffered.erase(0, used);
  if (st == BodyDecoder::State::error) {
    log(Level::info, "request body refused: %s", body.error_reason());
    relay.end = RelayEnd::body_refused;
    relay.refused_status = body.error_status();
    return false;
  }
  if (st == BodyDecoder::State::complete) relay.body_done = true;
  return true;
}

CgiOutcome finish_script(ClientConn& conn, const RequestHead& head, const std::string& script_name,
                         ScriptResponse& resp, const Relay& relay, bool& keep_alive, const char* stopped,
                         unsigned timeout_s) {
  const bool is_head = head.method == "HEAD";
  const bool head_sent = resp.head_sent();
  CgiOutcome result;
  RelayEnd end = relay.end;
  if (end == RelayEnd::body_refused) {
    keep_alive = false;
    if (!head_sent) {
      result.response = answer_error(conn, relay.refused_status, false, is_head);
      return result;
    }
    end = RelayEnd::client_gone;  // a response under way cannot be ended properly any more
  }
  if (end == RelayEnd::body_stalled && !head_sent) {
    log(Level::info, "%s: request body not received within Timeout (%u s); %s", script_name.c_str(), timeout_s,
        stopped);
    result.response = answer_error(conn, 408, false, is_head);
    return result;
  }
  if (end == RelayEnd::body_stalled || end == RelayEnd::client_gone) {
    log(Level::info, "%s: client went away; %s", script_name.c_str(), stopped);
    result.response = {false, resp.status(), false};
    return result;
  }
  if (end == RelayEnd::local_error && !head_sent) {
    result.response = answer_error(conn, 500, false, is_head);
    return result;
  }
  if (!head_sent) {
    if (!relay.failure.empty()) log(Level::err, "%s: %s", script_name.c_str(), relay.failure.c_str());
    result.response = answer_error(conn, end == RelayEnd::timed_out ? 504 : 502, false, is_head);
    return result;
  }
  result.local_redirect = resp.local_redirect();
  if (!result.local_redirect.empty()) {
    result.response = {true, 200, keep_alive && relay.body_done};
    return result;
  }
  const bool cut_off = end != RelayEnd::output_done;
  if (cut_off) {
    if (!relay.failure.empty()) log(Level::err, "%s: %s", script_name.c_str(), relay.failure.c_str());
    keep_alive = false;
  }
  const bool ok = resp.finish(cut_off);
  if (resp.short_of_length() || !relay.body_done || relay.crashed) keep_alive = false;
  result.response = {ok, resp.status(), keep_alive && ok};
  return result;
}

}  // namespace itk
