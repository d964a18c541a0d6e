// The text and JSON forms of a configuration check.
#include "ctl/check_report.h"

#include "ctl/json.h"

namespace itk {
namespace {

void append_entries(std::string& out, const std::vector<ConfigError>& list) {
  out += '[';
  for (size_t i = 0; i < list.size(); i++) {
    const ConfigError& e = list[i];
    if (i) out += ", ";
    out += "{\"file\": ";
    json_append_string(out, e.origin.file);
    out += ", \"line\": " + std::to_string(e.origin.line) + ", \"key\": ";
    if (e.key.empty()) out += "null";
    else json_append_string(out, e.key);
    out += ", \"message\": ";
    json_append_string(out, e.message);
    out += '}';
  }
  out += ']';
}

}  // namespace

int print_check(const LoadResult& r, const LoadOptions& opts, const char* prog, bool journal, FILE* out, FILE* err) {
  const char* warn = journal ? "<4>" : "";
  const char* error = journal ? "<3>" : "";
  for (const ConfigError& w : r.warnings) fprintf(err, "%swarning: %s\n", warn, w.str().c_str());
  for (const ConfigError& e : r.errors) fprintf(err, "%s%s\n", error, e.str().c_str());
  if (!r.errors.empty() || !r.config) {
    // The last line names the first error too: it alone says why, wherever the lines before it went.
    if (r.errors.empty()) fprintf(err, "%s%s: configuration has errors\n", error, prog);
    else
      fprintf(err, "%s%s: configuration has %zu error(s), the first: %s\n", error, prog, r.errors.size(),
              r.errors.front().str().c_str());
    return 1;
  }
  fprintf(out, "%s: configuration OK: %s and %s, %zu vhost(s)\n", prog, opts.config_file.c_str(),
          opts.config_dir.c_str(), r.config->vhosts.size());
  return 0;
}

std::string check_json(const LoadResult& r) {
  const bool ok = r.errors.empty() && r.config;
  std::string out = ok ? "{\"ok\": true, \"vhosts\": " + std::to_string(r.config->vhosts.size())
                       : std::string("{\"ok\": false, \"vhosts\": null");
  out += ", \"errors\": ";
  append_entries(out, r.errors);
  out += ", \"warnings\": ";
  append_entries(out, r.warnings);
  out += "}\n";
  return out;
}

}  // namespace itk
