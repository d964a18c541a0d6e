// CGI execution in the worker: script lookup beneath the DocumentRoot, a child with exactly fds
// 0-2 and a clean environment, request body in, response out, all bounded by CGITimeout.
#include "script/cgi.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "http/body_decoder.h"
#include "http/http_response.h"
#include "http/static_file.h"
#include "script/script_finish.h"
#include "script/script_io.h"
#include "sys/cgroup.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

std::string lower_ext(std::string_view name) {
  size_t slash = name.rfind('/');
  std::string_view base = slash == std::string_view::npos ? name : name.substr(slash + 1);
  size_t dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  std::string ext(base.substr(dot));
  for (char& c : ext)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return ext;
}

// Whether `name` runs as CGI for this vhost, and through which program ("" = itself).
bool script_program(const VHost& vh, std::string_view name, std::string& program, const FastCgiApp*& fastcgi) {
  std::string ext = lower_ext(name);
  fastcgi = nullptr;
  if (ext.empty()) return false;
  for (const auto& e : vh.cgi_extensions)
    if (e == ext) {
      program.clear();
      return true;
    }
  for (const auto& h : vh.handlers)
    if (h.extension == ext) {
      program = h.program;
      return true;
    }
  for (const auto& a : vh.fastcgi.apps)
    if (a.extension == ext) {
      program = a.program;
      fastcgi = &a;
      return true;
    }
  return false;
}

// Stats `path` (decoded, starting with '/') beneath the root; the kernel refuses escapes. 0 or -errno.
[[nodiscard]] int stat_beneath(const DocRoot& root, const std::string& path, struct stat& st) {
  int fd = open_path_beneath(root, path);
  if (fd < 0) return fd;
  unique_fd owner(fd);
  if (fstat(fd, &st) != 0) return -errno;
  return 0;
}

[[noreturn]] void exec_script(const std::string& program, const std::string& script_filename,
                              const std::vector<std::string>& env, int in, int out, int err) {
  // Its own process group, so that the worker can end the script and whatever it started in one kill.
  (void)setpgid(0, 0);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
  close_range(3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // Ignored signals stay ignored across exec: give the script the defaults.
  for (int s : {SIGPIPE, SIGHUP, SIGUSR1, SIGTERM, SIGCHLD}) signal(s, SIG_DFL);
  // A script runs in its own directory (RFC 3875 §7.2). A Handler program starts in / instead: php-cgi
  // reads php.ini and php-cgi-fcgi.ini from its working directory before the admin's, so a file the
  // tenant put beside the script would replace disable_functions, open_basedir and the rest. php-cgi
  // changes into the script's directory itself before running it.
  std::string dir = program.empty() ? script_filename.substr(0, script_filename.rfind('/')) : "/";
  if (chdir(dir.empty() ? "/" : dir.c_str()) != 0) {
    dprintf(2, "cannot enter the script's directory %s: %s\n", dir.c_str(), strerror(errno));
    _exit(127);
  }
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::string& exe = program.empty() ? script_filename : program;
  std::vector<char*> argv{const_cast<char*>(exe.c_str())};
  if (!program.empty()) argv.push_back(const_cast<char*>(script_filename.c_str()));
  argv.push_back(nullptr);
  execve(exe.c_str(), argv.data(), envp.data());
  dprintf(2, "cannot execute %s: %s\n", exe.c_str(), strerror(errno));
  _exit(127);
}

// What the journal says about a script whose output failed or was cut short.
std::string failure_text(RelayEnd end, const ScriptResponse& resp, int wstatus, unsigned cgi_timeout) {
  if (end == RelayEnd::timed_out)
    return resp.head_sent()
               ? strprintf("still running at CGITimeout (%u s); script killed, response cut short", cgi_timeout)
               : strprintf("no response within CGITimeout (%u s); script killed", cgi_timeout);
  if (resp.head_sent()) return {};
  if (WIFSIGNALED(wstatus)) return strprintf("killed by signal %d before its header block", WTERMSIG(wstatus));
  if (!resp.head_complete())
    return strprintf("exited (status %d) without a complete header block", WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
  return {};
}

}  // namespace

ScriptMatch match_script(const DocRoot& root, const std::string& path, const VHost& vh) {
  ScriptMatch m;
  m.document_root = root.real;
  if (!root.ok() || path.empty() || path[0] != '/') return m;
  for (size_t pos = 1;;) {
    size_t next = path.find('/', pos);
    std::string prefix = path.substr(0, next);
    if (prefix.size() > 1 && prefix.back() != '/') {
      struct stat st {};
      if (stat_beneath(root, prefix, st) != 0) return m;  // the static path answers 403/404 the same way
      if (S_ISREG(st.st_mode)) {
        std::string rest = next == std::string::npos ? "" : path.substr(next);
        if (script_program(vh, prefix, m.program, m.fastcgi)) {
          m.kind = ScriptMatch::script;
          m.script_name = prefix;
          m.path_info = rest;
        } else if (!rest.empty()) {
          m.kind = ScriptMatch::not_found;  // extra path after a static file: Apache's AcceptPathInfo default
        }
        return m;
      }
      if (!S_ISDIR(st.st_mode)) return m;
    }
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  if (path.back() == '/') {
    for (const std::string& index : vh.directory_index) {
      struct stat st {};
      int rc = stat_beneath(root, path + index, st);
      if (rc == -ENOENT) continue;
      if (rc != 0 || !S_ISREG(st.st_mode)) return m;
      if (script_program(vh, index, m.program, m.fastcgi)) {
        m.kind = ScriptMatch::script;
        m.script_name = path + index;
      }
      return m;
    }
  }
  return m;
}

CgiOutcome run_cgi(const Runtime& rt, const VHost& vh, const RequestHead& head, const ScriptMatch& m,
                   ClientConn& conn, std::string& buffered, bool keep_alive, bool in_leaf) {
  const ServerConfig& sc = rt.config->server;
  const bool is_head = head.method == "HEAD";
  CgiOutcome result;
  const std::string script_filename = m.document_root + m.script_name;
  if (m.program.empty() && access(script_filename.c_str(), X_OK) != 0) {
    log(Level::info, "%s is not executable by uid %u: 403", script_filename.c_str(), static_cast<unsigned>(getuid()));
    result.response = answer_error(conn, 403, keep_alive && !head.has_body(), is_head);
    return result;
  }

  // --- request body ---
  BodyDecoder body(head.content_length, head.chunked, sc.limit_request_body);
  RequestHead env_head;
  unique_fd stdin_fd;
  unique_fd body_pipe;  // our end, when the body is streamed
  if (!prepare_body(conn, head, body, buffered, sc.timeout, rt.state(vh).temp_dir, env_head, stdin_fd, result.response)) return result;
  // A chunked body is in stdin_fd (a file in the vhost's temporary directory) already; others are
  // streamed or empty.
  if (!head.chunked && head.has_body()) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
      result.response = answer_error(conn, 500, false, is_head);
      return result;
    }
    stdin_fd.reset(p[0]);
    body_pipe.reset(p[1]);
    (void)fcntl(body_pipe.get(), F_SETFL, O_NONBLOCK);
  } else if (!head.chunked) {
    stdin_fd.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  }

  // --- environment ---
  std::vector<std::string> env = script_environment(vh, rt.state(vh), env_head, conn, m, script_filename);

  int outp[2], errp[2];
  if (pipe2(outp, O_CLOEXEC) != 0) {
    result.response = answer_error(conn, 500, false, is_head);
    return result;
  }
  unique_fd out_r(outp[0]), out_w(outp[1]);
  if (pipe2(errp, O_CLOEXEC) != 0) {
    result.response = answer_error(conn, 500, false, is_head);
    return result;
  }
  unique_fd err_r(errp[0]), err_w(errp[1]);

  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork for %s failed: %s", script_filename.c_str(), strerror(errno));
    result.response = answer_error(conn, 503, false, is_head, "Retry-After: 2\r\n");
    return result;
  }
  if (pid == 0) exec_script(m.program, script_filename, env, stdin_fd.get(), out_w.get(), err_w.get());
  (void)setpgid(pid, pid);  // also from here, so the group exists before any kill below
  stdin_fd.reset();
  out_w.reset();
  err_w.reset();
  (void)fcntl(out_r.get(), F_SETFL, O_NONBLOCK);
  (void)fcntl(err_r.get(), F_SETFL, O_NONBLOCK);
  unique_fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));

  // --- relay ---
  const int64_t deadline = now_ms() + static_cast<int64_t>(vh.cgi_timeout) * 1000;
  StderrLog errlog(m.script_name);
  std::string to_child;          // decoded body bytes not yet written to the script
  Relay relay;
  relay.body_done = body.state() == BodyDecoder::State::complete || head.chunked;
  bool exited = false;
  int wstatus = 0;
  ScriptResponse resp(conn, head, m.script_name, keep_alive, m.default_status, &vh.compress);

  int64_t body_progress = now_ms();  // a client that stops sending its body is cut off after Timeout
  auto stop = [&relay](RelayEnd why) { relay.end = why; };
  while (out_r || err_r || !exited) {
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      stop(RelayEnd::timed_out);
      break;
    }
    if (body_pipe && !relay.body_done && to_child.empty() &&
        now_ms() - body_progress > static_cast<int64_t>(sc.timeout) * 1000) {
      stop(RelayEnd::body_stalled);
      break;
    }
    // What the script printed so far leaves before we wait for more.
    if (!resp.flush()) {
      stop(RelayEnd::client_gone);
      break;
    }
    pollfd fds[5];
    int n = 0, i_out = -1, i_err = -1, i_in = -1, i_client = -1, i_pid = -1;
    if (out_r) fds[i_out = n++] = {out_r.get(), POLLIN, 0};
    if (err_r) fds[i_err = n++] = {err_r.get(), POLLIN, 0};
    if (body_pipe && !to_child.empty()) fds[i_in = n++] = {body_pipe.get(), POLLOUT, 0};
    bool want_body = body_pipe && to_child.empty() && !relay.body_done;
    fds[i_client = n++] = {conn.fd, static_cast<short>((want_body ? POLLIN : 0) | POLLRDHUP), 0};
    if (want_body) left = std::min<int64_t>(left, static_cast<int64_t>(sc.timeout) * 1000);
    if (pidfd && !exited) fds[i_pid = n++] = {pidfd.get(), POLLIN, 0};
    // Body bytes that arrived with the head (or are decrypted already) are not signalled by poll.
    if (want_body && (!buffered.empty() || conn_buffered(conn) > 0)) fds[i_client].revents = POLLIN;
    else if (poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::min<int64_t>(left, 1000))) < 0 && errno != EINTR) break;
    if (!pidfd && !exited && waitpid(pid, &wstatus, WNOHANG) == pid) exited = true;

    if (i_client >= 0 && (fds[i_client].revents & (POLLRDHUP | POLLHUP | POLLERR)) && !want_body) {
      stop(RelayEnd::client_gone);
      break;
    }
    if (want_body && (fds[i_client].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))) {
      if (buffered.empty() && !read_body_bytes(conn, buffered, body_progress)) {
        stop(RelayEnd::client_gone);
        break;
      }
      if (!decode_body(body, buffered, to_child, relay)) break;
    }
    if (i_in >= 0 && (fds[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(body_pipe.get(), to_child.data(), to_child.size());
      if (w > 0) to_child.erase(0, static_cast<size_t>(w));
      else if (w < 0 && errno != EAGAIN) {
        // The script stopped reading its input: the rest of the body is dropped.
        body_pipe.reset();
        to_child.clear();
        keep_alive = false;
      }
    }
    if (body_pipe && relay.body_done && to_child.empty()) body_pipe.reset();  // EOF on the script's stdin

    if (i_err >= 0 && (fds[i_err].revents & (POLLIN | POLLHUP | POLLERR))) {
      char tmp[4096];
      ssize_t r = read(err_r.get(), tmp, sizeof tmp);
      if (r > 0) errlog.add(tmp, static_cast<size_t>(r));
      else if (r == 0 || errno != EAGAIN) err_r.reset();
    }
    if (i_out >= 0 && (fds[i_out].revents & (POLLIN | POLLHUP | POLLERR))) {
      char tmp[65536];
      ssize_t r = read(out_r.get(), tmp, sizeof tmp);
      if (r > 0) {
        ScriptResponse::Fed fed = resp.feed(tmp, static_cast<size_t>(r), relay.body_done);
        if (fed == ScriptResponse::Fed::bad_head) {
          stop(RelayEnd::output_cut);
          break;
        }
        if (fed == ScriptResponse::Fed::client_gone) {
          stop(RelayEnd::client_gone);
          break;
        }
      } else if (r == 0 || errno != EAGAIN) {
        out_r.reset();
      }
    }
    if (i_pid >= 0 && (fds[i_pid].revents & POLLIN)) {
      if (waitpid(pid, &wstatus, WNOHANG) == pid) exited = true;
    }
    // The response ends when the script closes its output; it need not have exited yet.
    if (!out_r) break;
  }

  // Whatever the script started ends with the request (a process that left the group is the
  // cgroup's to catch).
  (void)kill(-pid, SIGKILL);
  if (!exited) (void)waitpid(pid, &wstatus, 0);
  if (in_leaf) cgroup_kill_others();
  if (err_r) {
    char tmp[4096];
    ssize_t r;
    while ((r = read(err_r.get(), tmp, sizeof tmp)) > 0) errlog.add(tmp, static_cast<size_t>(r));
  }
  errlog.flush();

  relay.crashed = WIFSIGNALED(wstatus) && WTERMSIG(wstatus) != SIGKILL;
  relay.failure = failure_text(relay.end, resp, wstatus, vh.cgi_timeout);
  return finish_script(conn, head, m.script_name, resp, relay, keep_alive, "script stopped", sc.timeout);
}

}  // namespace itk
