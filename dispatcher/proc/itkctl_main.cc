// itkctl: the administrator's tool beside itkd. `vhosts` and `check` load the configuration with itkd's own
// loader (no daemon needed); `status`, `reload` and `reopen-logs` ask the running master over its root-only
// control socket ($RUNTIME_DIRECTORY/control.sock).
#include <getopt.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "config/config.h"
#include "ctl/check_report.h"
#include "ctl/control_client.h"
#include "ctl/control_protocol.h"
#include "ctl/status_report.h"
#include "ctl/vhosts_report.h"
#include "sys/io.h"

namespace {

constexpr int kAnswerMs = 5000;
// How long `reload` waits for the master to say it has handled the SIGHUP (a reload starts key processes).
constexpr int64_t kReloadWaitMs = 60000;

void usage(FILE* out) {
  fprintf(out,
          "Usage: itkctl COMMAND [OPTIONS]\n"
          "\n"
          "  vhosts        list the configured vhosts: names, aliases, DocumentRoot, user, handlers, FILE:LINE\n"
          "  check         validate the configuration as itkd --check does (--json: one JSON object)\n"
          "  status        per-vhost workers, spares, PHP processes, requests and 503s of the running itkd (--json)\n"
          "  reload        reload the running itkd (systemctl reload under systemd, else check, then SIGHUP)\n"
          "  reopen-logs   ask the running itkd to reopen its log files (SIGUSR1)\n"
          "\n"
          "  --config FILE      server configuration (default /etc/itk.conf)\n"
          "  --config-dir DIR   vhost drop-ins (default /etc/itk.d)\n"
          "  --socket PATH      the master's control socket (default $RUNTIME_DIRECTORY/control.sock, else\n"
          "                     /run/itk/control.sock)\n"
          "  --json             machine-readable output (check, status)\n"
          "  --version          print the version and exit\n"
          "  --help             show this help\n");
}

// The master's status; false when it cannot be had (the reason is said on stderr).
bool ask_status(const std::string& socket_path, itk::ServerStatus& s, std::string& answer) {
  int rc = itk::control_request(socket_path, itk::kControlStatusRequest, kAnswerMs, answer);
  if (rc < 0) {
    fprintf(stderr, "itkctl: cannot ask itkd at %s: %s%s\n", socket_path.c_str(), strerror(-rc),
            rc == -ENOENT || rc == -ECONNREFUSED ? " (is itk.service running? in standby, before a configuration "
                                                   "loads, there is no control socket: see itkctl check)"
            : rc == -EACCES ? " (the control socket is root's only)"
                            : "");
    return false;
  }
  std::string error;
  if (!itk::decode_status(answer, s, error)) {
    fprintf(stderr, "itkctl: %s: %s\n", socket_path.c_str(), error.c_str());
    return false;
  }
  return true;
}

int run_program(const char* const argv[]) {
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    execvp(argv[0], const_cast<char* const*>(argv));
    fprintf(stderr, "itkctl: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -errno;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Under systemd, `systemctl reload` (its ExecReload checks first and the job says how it went). Else the
// same steps by hand: the check of the master's own configuration files, SIGHUP, and the master's word.
int reload(const std::string& socket_path) {
  itk::ServerStatus s;
  std::string answer;
  if (!ask_status(socket_path, s, answer)) return 1;
  if (!s.unit.empty()) {
    const char* argv[] = {"systemctl", "reload", s.unit.c_str(), nullptr};
    int rc = run_program(argv);
    return rc < 0 ? 1 : rc;
  }
  itk::LoadOptions opts;
  opts.config_file = s.config_file;
  opts.config_dir = s.config_dir;
  opts.config_file_explicit = true;
  itk::LoadResult r = itk::load_config(opts);
  if (itk::print_check(r, opts, "itkctl", false, stdout, stderr) != 0) {
    fprintf(stderr, "itkctl: not reloading: itkd %d keeps its running configuration\n", static_cast<int>(s.pid));
    return 1;
  }
  if (kill(s.pid, SIGHUP) < 0) {
    fprintf(stderr, "itkctl: cannot signal itkd %d: %s\n", static_cast<int>(s.pid), strerror(errno));
    return 1;
  }
  const int64_t deadline = itk::now_ms() + kReloadWaitMs;
  itk::ServerStatus now;
  while (itk::now_ms() < deadline) {
    usleep(100000);
    if (!ask_status(socket_path, now, answer)) return 1;
    if (now.reloads <= s.reloads) continue;
    if (!now.reload_error.empty()) {
      fprintf(stderr, "itkctl: reload refused: %s\n", now.reload_error.c_str());
      return 1;
    }
    printf("itkctl: itkd %d reloaded: generation %llu\n", static_cast<int>(now.pid),
           static_cast<unsigned long long>(now.generation));
    return 0;
  }
  fprintf(stderr, "itkctl: itkd %d did not report the reload within %lld s\n", static_cast<int>(s.pid),
          static_cast<long long>(kReloadWaitMs / 1000));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  itk::LoadOptions opts;
  std::string socket_path = itk::control_socket_path();
  bool json = false;
  static const option longopts[] = {
      {"config", required_argument, nullptr, 'c'}, {"config-dir", required_argument, nullptr, 'd'},
      {"socket", required_argument, nullptr, 's'}, {"json", no_argument, nullptr, 'j'},
      {"help", no_argument, nullptr, 'h'},         {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  int opt;
  while ((opt = getopt_long(argc, argv, "c:d:s:jhV", longopts, nullptr)) != -1) {
    switch (opt) {
      case 'c':
        opts.config_file = optarg;
        opts.config_file_explicit = true;
        break;
      case 'd': opts.config_dir = optarg; break;
      case 's': socket_path = optarg; break;
      case 'j': json = true; break;
      case 'h': usage(stdout); return 0;
      case 'V': printf("itkctl %s\n", ITK_VERSION); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (optind + 1 != argc) {
    if (optind < argc) fprintf(stderr, "itkctl: expected one command, got %d\n", argc - optind);
    usage(stderr);
    return 2;
  }
  const std::string command = argv[optind];

  if (command == "check") {
    itk::LoadResult r = itk::load_config(opts);
    if (!json) return itk::print_check(r, opts, "itkctl", false, stdout, stderr);
    fputs(itk::check_json(r).c_str(), stdout);
    return r.errors.empty() && r.config ? 0 : 1;
  }
  if (command == "vhosts") {
    itk::LoadResult r = itk::load_config(opts);
    if (!r.config || !r.errors.empty()) return itk::print_check(r, opts, "itkctl", false, stdout, stderr);
    for (const auto& w : r.warnings) fprintf(stderr, "warning: %s\n", w.str().c_str());
    fputs(itk::format_vhosts(*r.config, itk::nss_id_names()).c_str(), stdout);
    return 0;
  }
  if (command == "status") {
    itk::ServerStatus s;
    std::string answer;
    if (!ask_status(socket_path, s, answer)) return 1;
    fputs((json ? itk::status_json(s) : itk::format_status_table(s)).c_str(), stdout);
    return 0;
  }
  if (command == "reload") return reload(socket_path);
  if (command == "reopen-logs") {
    itk::ServerStatus s;
    std::string answer;
    if (!ask_status(socket_path, s, answer)) return 1;
    if (kill(s.pid, SIGUSR1) < 0) {
      fprintf(stderr, "itkctl: cannot signal itkd %d: %s\n", static_cast<int>(s.pid), strerror(errno));
      return 1;
    }
    return 0;
  }
  fprintf(stderr, "itkctl: unknown command '%s'\n", command.c_str());
  usage(stderr);
  return 2;
}
