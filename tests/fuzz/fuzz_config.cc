// Fuzz target: the configuration loader (inih driven line by line, and every check of a value) on
// arbitrary text as /etc/itk.conf and as a drop-in, then the checks across vhosts. A configuration
// is written by an administrator, but a panel may write it from what a customer typed: it must give
// errors with a file:line, never a crash.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  itk::Config cfg;
  cfg.config_file = "/etc/itk.conf";
  cfg.config_dir = "/etc/itk.d";
  std::vector<itk::ConfigError> errors, warnings;
  itk::parse_config_text(text, "/etc/itk.conf", false, cfg, errors);
  itk::parse_config_text(text, "/etc/itk.d/a.conf", true, cfg, errors);
  itk::validate_config(cfg, false, errors, warnings);
  for (const itk::ConfigError& e : errors) {
    check(!e.origin.file.empty() && e.origin.line >= 0 && !e.message.empty());
    check(e.origin.line <= static_cast<int>(size) + 1);
  }
  if (errors.empty())
    for (const itk::VHost& v : cfg.vhosts) {
      check(v.identity.uid != 0 && v.identity.gid != 0);
      check(!v.document_root.empty() && v.document_root[0] == '/');
      check(v.max_clients_vhost >= 1);
    }
  return 0;
}
