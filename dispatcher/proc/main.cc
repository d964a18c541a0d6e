// itkd entry point: command line, --check, and the start of the master.
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "config/config.h"
#include "ctl/check_report.h"
#include "proc/master.h"
#include "proc/standby.h"
#include "sys/listen_fds.h"
#include "sys/log.h"
#include "sys/notify.h"
#include "sys/proctitle.h"

namespace {

void usage(FILE* out) {
  fprintf(out,
          "Usage: itkd [--config FILE] [--config-dir DIR] [--check] [--version]\n"
          "\n"
          "Socket-activated HTTP dispatcher that serves each vhost under its own uid and gid.\n"
          "\n"
          "  --config FILE      server configuration (default /etc/itk.conf)\n"
          "  --config-dir DIR   vhost drop-ins, *.conf in lexical order (default /etc/itk.d)\n"
          "  --check            validate the configuration, print every error, exit 0 if valid\n"
          "  --version          print the version and exit\n"
          "  --help             show this help\n"
          "\n"
          "Started by itk.socket (systemd) or by hand with:\n"
          "  systemd-socket-activate -l 127.0.0.1:8080 --fdname=http itkd --config ... --config-dir ...\n");
}

// systemd's JOURNAL_STREAM names the device and inode of the stream it connected stderr to; it is
// only trusted when stderr is still that stream (systemd.exec(5)).
bool stderr_is_journal() {
  const char* js = getenv("JOURNAL_STREAM");
  if (!js) return false;
  unsigned long long dev = 0, ino = 0;
  if (sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

int main(int argc, char** argv) {
  itk::LoadOptions opts;
  bool check = false;
  static const option longopts[] = {
      {"config", required_argument, nullptr, 'c'},
      {"config-dir", required_argument, nullptr, 'd'},
      {"check", no_argument, nullptr, 't'},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  int opt;
  while ((opt = getopt_long(argc, argv, "c:d:thV", longopts, nullptr)) != -1) {
    switch (opt) {
      case 'c':
        opts.config_file = optarg;
        opts.config_file_explicit = true;
        break;
      case 'd': opts.config_dir = optarg; break;
      case 't': check = true; break;
      case 'h': usage(stdout); return 0;
      case 'V': printf("itkd %s\n", ITK_VERSION); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "itkd: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }

  // From here on argv[] is the process title ("itkd: master"); the options above are copies. The time zone
  // is read now, so that workers format a request's time without opening a file.
  itk::proctitle_init(argc, argv);
  tzset();
  itk::LoadResult r = itk::load_config(opts);
  if (check) {
    // Under systemd (ExecReload=itkd --check) stderr is the journal: each line says its priority, so
    // `journalctl -p err` shows why a reload failed. On a terminal the lines stay plain.
    return itk::print_check(r, opts, "itkd", stderr_is_journal(), stdout, stderr);
  }

  itk::log_set_role("master");
  for (const auto& w : r.warnings) itk::log(itk::Level::warning, "%s", w.str().c_str());
  if (geteuid() != 0) {
    itk::log(itk::Level::err, "itkd must start as root: it switches every worker to its vhost's user");
    return 1;
  }
  std::vector<itk::Listener> listeners;
  std::string error;
  if (!itk::collect_listeners(listeners, error)) {
    for (const auto& e : r.errors) itk::log(itk::Level::err, "%s", e.str().c_str());
    itk::log(itk::Level::err, "%s", error.c_str());
    itk::notify("STATUS=" + error);
    return 1;
  }
  std::unique_ptr<itk::Config> cfg = std::move(r.config);
  // A configuration that does not load at start: clients are answered and the load is retried, instead
  // of exiting into systemd's restart loop while connections wait in the queue.
  if (!r.errors.empty()) cfg = itk::standby_until_loaded(opts, listeners, r);
  if (!cfg) return 0;
  return itk::master_main(opts, std::move(cfg), std::move(listeners));
}
