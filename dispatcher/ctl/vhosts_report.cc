// The vhosts table of `itkctl vhosts`.
#include "ctl/vhosts_report.h"

#include <grp.h>
#include <pwd.h>

#include <vector>

namespace itk {
namespace {

std::string name_or_number(const std::string& name, unsigned id) { return name.empty() ? std::to_string(id) : name; }

std::string identity_text(const Identity& id, const IdNames& names) {
  std::string s = name_or_number(names.user(id.uid), id.uid) + ":" + name_or_number(names.group(id.gid), id.gid) +
                  " (" + std::to_string(id.uid) + "/" + std::to_string(id.gid) + ")";
  if (id.groups.size() != 1 || id.groups.front() != id.gid) {
    s += ", groups";
    for (gid_t g : id.groups) s += " " + std::to_string(g);
  }
  if (id.nice) s += ", nice " + std::to_string(*id.nice);
  return s;
}

std::string handlers_text(const VHost& vh) {
  std::vector<std::string> parts;
  for (const std::string& ext : vh.cgi_extensions) parts.push_back("CGI " + ext);
  for (const Handler& h : vh.handlers) parts.push_back("Handler " + h.extension + " " + h.program);
  for (const FastCgiApp& a : vh.fastcgi.apps) parts.push_back("FastCGI " + a.extension + " " + a.program);
  std::string s;
  for (const std::string& p : parts) s += (s.empty() ? "" : "; ") + p;
  return s;
}

void line(std::string& out, const char* label, const std::string& value) {
  if (value.empty()) return;
  out += "    ";
  out += label;
  out.append(10 - std::string_view(label).size(), ' ');
  out += value + "\n";
}

}  // namespace

IdNames nss_id_names() {
  IdNames n;
  n.user = [](uid_t uid) {
    passwd pw {}, *found = nullptr;
    char buf[4096];
    return getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found ? std::string(pw.pw_name) : std::string();
  };
  n.group = [](gid_t gid) {
    group gr {}, *found = nullptr;
    char buf[16384];
    return getgrgid_r(gid, &gr, buf, sizeof buf, &found) == 0 && found ? std::string(gr.gr_name) : std::string();
  };
  return n;
}

std::string format_vhosts(const Config& cfg, const IdNames& names) {
  std::string out = "Configuration: " + cfg.config_file + " and " + cfg.config_dir + ", " +
                    std::to_string(cfg.vhosts.size()) + " vhost(s)\n";
  for (size_t i = 0; i < cfg.vhosts.size(); i++) {
    const VHost& vh = cfg.vhosts[i];
    out += vh.server_name + (i == cfg.default_vhost ? " (default)" : "") + "  " + vh.origin.str() + "\n";
    std::string aliases;
    for (const std::string& a : vh.aliases) aliases += (aliases.empty() ? "" : " ") + a;
    line(out, "aliases", aliases);
    line(out, "root", vh.document_root + (vh.document_root_problem.empty() ? "" : "  (unusable: " +
                                                                                       vh.document_root_problem + ")"));
    line(out, "user", identity_text(vh.identity, names));
    line(out, "handlers", handlers_text(vh));
    line(out, "limits", vh.max_clients_vhost ? "MaxClientsVHost " + std::to_string(vh.max_clients_vhost) : "");
  }
  return out;
}

}  // namespace itk
