// Loading and validating a configuration of 10,000 vhost drop-ins with itk::load_config, as the
// master does at start, on SIGHUP and for `itkd --check`.
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "config/config.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace {

constexpr size_t kDropIns = 10000;

// A generated tree under $TMPDIR (or /tmp): itk.conf, itk.d/ with one drop-in per vhost, and one
// DocumentRoot directory per vhost, since validation stats each of them. Removed at exit.
class ConfigTree {
 public:
  ConfigTree() { error_ = create(); }
  ~ConfigTree() {
    if (!root_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(root_, ec);
    }
  }
  ConfigTree(const ConfigTree&) = delete;
  ConfigTree& operator=(const ConfigTree&) = delete;

  const std::string& error() const { return error_; }  // empty when the tree is complete
  std::string config_file() const { return root_ + "/itk.conf"; }
  std::string config_dir() const { return root_ + "/itk.d"; }

 private:
  std::string create() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/itk-microbench.XXXXXX";
    if (!mkdtemp(templ.data()))
      return itk::strprintf("mkdtemp(%s) failed: %s; set TMPDIR to a writable directory", templ.c_str(),
                            std::strerror(errno));
    root_ = templ;
    for (const char* sub : {"/itk.d", "/www"}) {
      std::string d = root_ + sub;
      if (mkdir(d.c_str(), 0755) != 0) return itk::strprintf("mkdir(%s) failed: %s", d.c_str(), std::strerror(errno));
    }
    // The acceptor user is numeric so that loading needs no passwd entry on the machine.
    std::string e = write_file(config_file(), "[server]\nUser = #65534\nStartServers = 2\n");
    if (!e.empty()) return e;
    for (size_t i = 0; i < kDropIns; i++) {
      std::string docroot = itk::strprintf("%s/www/site%zu", root_.c_str(), i);
      if (mkdir(docroot.c_str(), 0755) != 0)
        return itk::strprintf("mkdir(%s) failed: %s", docroot.c_str(), std::strerror(errno));
      std::string text = itk::strprintf(
          "# site%zu.example.net\n"
          "[vhost]\n"
          "ServerName = site%zu.example.net\n"
          "ServerAlias = www.site%zu.example.net *.site%zu.example.org\n"
          "DocumentRoot = %s\n"
          "AssignUserID = #%zu #%zu\n"
          "MaxClientsVHost = 20\n"
          "NiceValue = 5\n",
          i, i, i, i, docroot.c_str(), 10000 + i, 10000 + i);
      e = write_file(itk::strprintf("%s/site%05zu.conf", config_dir().c_str(), i), text);
      if (!e.empty()) return e;
    }
    return {};
  }

  static std::string write_file(const std::string& path, const std::string& text) {
    itk::unique_fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) return itk::strprintf("creating %s failed: %s", path.c_str(), std::strerror(errno));
    if (!itk::write_all_fd(fd.get(), text))
      return itk::strprintf("writing %s failed: %s", path.c_str(), std::strerror(errno));
    return {};
  }

  std::string root_;
  std::string error_;
};

void BM_LoadConfig10000DropIns(benchmark::State& state) {
  static ConfigTree tree;
  if (!tree.error().empty()) {
    state.SkipWithError(tree.error().c_str());
    return;
  }
  itk::LoadOptions opts;
  opts.config_file = tree.config_file();
  opts.config_dir = tree.config_dir();
  opts.config_file_explicit = true;
  opts.check_filesystem = true;
  for (auto _ : state) {
    itk::LoadResult r = itk::load_config(opts);
    if (!r.config) {
      std::string msg = r.errors.empty() ? std::string("load_config returned no config") : r.errors.front().str();
      state.SkipWithError(msg.c_str());
      break;
    }
    if (r.config->vhosts.size() != kDropIns) {
      state.SkipWithError("load_config did not return every vhost");
      break;
    }
    benchmark::DoNotOptimize(r.config.get());
  }
  state.counters["vhosts"] = static_cast<double>(kDropIns);
}
BENCHMARK(BM_LoadConfig10000DropIns)->Unit(benchmark::kMillisecond);

}  // namespace
