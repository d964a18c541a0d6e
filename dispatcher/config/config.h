// Configuration value types and the loader for /etc/itk.conf + /etc/itk.d/*.conf (inih).
// Loading is done once by the master (start, SIGHUP, --check); the result is immutable afterwards.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/address_range.h"
#include "config/log_format.h"
#include "sys/identity.h"

namespace itk {

// Where a value came from, for error messages: "file:line".
struct Origin {
  std::string file;
  int line = 0;
  std::string str() const;
};

// A certificate and its private key as configured. The master reads the certificate; only the key
// process (and a short-lived checking child at load) ever reads the key file.
struct TlsFiles {
  std::string certificate_file;  // PEM: the certificate, then its chain
  std::string key_file;          // PEM private key, unencrypted (RSA or EC)
  Origin certificate_at;         // where each key was given, for errors
  Origin key_at;
  bool empty() const { return certificate_file.empty() && key_file.empty(); }
};

// A program that runs files with one extension (php-cgi for ".php"): the file is its argument.
struct Handler {
  std::string extension;  // lower-case, with the dot: ".php"
  std::string program;    // absolute path
};

// A FastCGI application serving files with one extension (php-cgi for ".php"), kept warm in a pool.
struct FastCgiApp {
  std::string extension;  // lower-case, with the dot: ".php"
  std::string program;    // absolute path; started with the pool's listening socket as fd 0
};

// FastCGI pool settings: [server] gives defaults, a [vhost] overrides each one it sets.
struct FastCgiSettings {
  std::vector<FastCgiApp> apps;
  unsigned max_processes = 0;  // 0: the vhost's MaxClientsVHost, else kDefaultFastCgiProcesses
  unsigned idle_timeout = 60;  // seconds without traffic before a pool stops; 0 = never
  unsigned max_requests = 10000;  // PHP_FCGI_MAX_REQUESTS for the app; 0 = never recycle
  bool apps_set = false, max_processes_set = false, idle_timeout_set = false, max_requests_set = false;
};
constexpr unsigned kDefaultFastCgiProcesses = 8;

// Content codings of text responses (gzip, br): [server] gives defaults, a [vhost] overrides each key it sets.
struct CompressSettings {
  bool enabled = true;
  // Lower-case media types without parameters, "type/subtype" or "type/*". Images, audio, video, fonts
  // in WOFF and archives are compressed already; the textual types and the few binary ones that
  // shrink by half or more (wasm, TrueType, icons) are listed.
  std::vector<std::string> types = {
      "text/*",
      "application/javascript", "application/x-javascript", "application/json", "application/ld+json",
      "application/manifest+json", "application/xml", "application/xhtml+xml", "application/rss+xml",
      "application/atom+xml", "image/svg+xml", "image/x-icon", "application/wasm", "font/ttf", "font/otf",
      "application/vnd.ms-fontobject",
  };
  uint64_t min_size = 256;  // bytes: smaller bodies gain less than the coding's own header costs
  bool enabled_set = false, types_set = false, min_size_set = false;
};

// `Redirect [status] /path URL` (mod_alias): `path` and everything below it, on segment boundaries.
struct RedirectRule {
  std::string path;  // decoded and normalised as a request path is; "/x/" matches below /x/ only
  std::string url;   // an absolute URL or a local path; empty for 410 Gone
  int status = 302;
};

// `ErrorDocument code /path`: served in place of the built-in page for `status`.
struct ErrorDocument {
  int status = 0;
  std::string target;  // a local path as a request target, maybe with a query
};

// `Header = Name "value"`: set on every response of the vhost, replacing one of the same name.
struct HeaderLine {
  std::string name;
  std::string value;
};

// AccessLog, ErrorLog and LogFormat as one section gave them; [server]'s are every vhost's defaults. After
// validation a vhost's paths are final: its own, else [server]'s with %v replaced by its ServerName.
struct LogSettings {
  std::string access_log;  // absolute; in [server] "%v" may stand for each vhost's ServerName; empty: none
  std::string error_log;
  bool access_log_set = false, error_log_set = false;  // given in this section (`off` included)
  LogFormat format;        // after validation: its own, else [server]'s, else combined
  bool format_set = false;
  Origin access_log_at, error_log_at;
};

// `PHPAdminValue`/`PHPAdminFlag` (admin: no script may change it) or `PHPValue`/`PHPFlag` (a default the
// tenant's .user.ini and ini_set() may change as PHP allows): one PHP ini setting of the vhost.
struct PhpSetting {
  std::string name;   // a PHP ini directive name: letters, digits, '_' and '.'
  std::string value;  // as written; for a flag "On" or "Off"
  bool admin = false;
  bool flag = false;  // PHPAdminFlag, PHPFlag
  Origin at;          // its line, for a later duplicate's error
};

struct VHost {
  std::string server_name;            // lower-case
  std::vector<std::string> aliases;   // lower-case; may start with "*."
  std::string document_root;          // absolute path
  std::string symlink_root;           // SymlinkRoot: DocumentRoot or a directory above it; empty: DocumentRoot
  Origin symlink_root_at;
  Identity identity;
  unsigned max_clients_vhost = 0;     // after validation: its own, else [server]'s, else MaxClients / 2 (at least 1)
  bool max_clients_vhost_set = false; // given in the vhost's own section
  std::vector<std::string> directory_index = {"index.html"};
  bool is_default = false;
  std::vector<std::string> cgi_extensions;  // lower-case, with the dot: files run directly as CGI
  std::vector<Handler> handlers;            // files run through a program as CGI
  unsigned cgi_timeout = 0;                 // seconds; 0 = the [server] CGITimeout
  uint64_t max_processes_vhost = 0;         // pids.max of its cgroup; 0 = no limit
  uint64_t memory_max_vhost = 0;            // memory.max of its cgroup, bytes; 0 = no limit
  unsigned cpu_weight_vhost = 0;            // cpu.weight of its cgroup (1..10000); 0 = the default 100
  TlsFiles tls;                             // its certificate for TLS clients that name it (SNI)
  FastCgiSettings fastcgi;                  // after validation: complete (server defaults applied)
  bool deny_dot_files = true;               // 403 for any path segment starting with '.', but /.well-known
  std::vector<std::string> deny_prefixes;   // 403 at and beneath each: "/data" ("/" for everything)
  std::string document_root_problem;        // at load: why its user could not enter DocumentRoot; empty if it could
  std::string fallback_resource;            // decoded local path run or served for missing paths; empty: none
  bool fallback_resource_set = false;       // given in the vhost (`disabled` included), so [server]'s is not used
  std::vector<RedirectRule> redirects;      // in configuration order: the first that matches wins
  bool redirect_https = false;              // plain HTTP requests are sent to https:// (ACME challenges excepted)
  std::vector<ErrorDocument> error_documents;
  std::vector<HeaderLine> headers;          // added to every response
  std::vector<std::string> no_exec;         // decoded path prefixes (no trailing '/') where no script runs
  LogSettings logs;                         // after validation: the files this vhost's lines go to
  CompressSettings compress;                // after validation: complete (server defaults applied)
  std::vector<PhpSetting> php_settings;     // written to the vhost's PHP ini directory (config/php_settings.h)
  bool php_user_ini = true;                 // PHPUserIni: PHP reads the tenant's .user.ini files
  Origin origin;                      // where its [vhost] section starts
};

struct ServerConfig {
  unsigned start_servers = 0;             // 0 at parse time = number of online CPUs (filled by load_config)
  unsigned max_clients = 256;
  unsigned max_clients_vhost = 0;         // every vhost's share unless it sets its own; 0 = max_clients / 2
  unsigned max_connection_time = 3600;    // seconds one connection may hold a worker in all; 0 = no bound
  unsigned timeout = 60;                  // seconds: send/receive inactivity in a worker
  unsigned keep_alive_timeout = 5;        // seconds: idle wait for the next request on a connection
  unsigned max_keep_alive_requests = 100; // 0 = unlimited
  unsigned request_read_timeout = 20;     // seconds: whole request head must arrive within this
  unsigned queue_timeout = 5;             // seconds a connection over a limit waits for a slot; 0 = 503 at once
  unsigned limit_request_line = 8190;
  unsigned limit_request_field_size = 8190;
  unsigned limit_request_fields = 100;
  unsigned limit_head_buffers = 32u << 20;  // bytes one acceptor holds for unfinished heads, all connections
  uint64_t limit_request_body = 134217728;  // 128 MiB: docs/configuration.md says why
  unsigned graceful_shutdown_timeout = 30; // seconds SIGTERM waits for in-flight requests
  unsigned cgi_timeout = 60;              // seconds a CGI request may run in all
  IdRange limit_uid_range{1000, 59999};
  IdRange limit_gid_range{1000, 59999};
  std::string user = "itk";               // acceptor user (name or #uid)
  Identity acceptor;                      // resolved User: uid, its primary gid, no supplementary groups
  TlsFiles tls;                           // default certificate: TLS clients without SNI or with an unknown name
  FastCgiSettings fastcgi;                // defaults for every vhost
  std::string fallback_resource;          // FallbackResource of every vhost that gives none
  CompressSettings compress;              // defaults for every vhost
  std::vector<std::string> proxy_protocol;        // listener names whose connections start with a PROXY header
  std::vector<AddressRange> proxy_protocol_from;  // the only peers that may send one
  Origin proxy_protocol_at, proxy_protocol_from_at;  // where they were given, for the check of the pair
  LogSettings logs;                       // defaults of every vhost; a path without %v is also the server-wide file
};

struct Config {
  std::string config_file;
  std::string config_dir;
  ServerConfig server;
  std::vector<VHost> vhosts;  // in load order: drop-ins in lexical order, sections in file order
  size_t default_vhost = 0;   // index into vhosts: the Default = yes one, else the first
};

struct ConfigError {
  Origin origin;      // file and line; line 0 when the error is about a whole file
  std::string key;    // empty when not about one key
  std::string message;
  std::string str() const;  // "file:line: Key: message"
};

struct LoadResult {
  std::unique_ptr<Config> config;   // set only when errors is empty
  std::vector<ConfigError> errors;  // every error found, in file order
  std::vector<ConfigError> warnings;  // served anyway (an expired certificate); the caller reports them
};

struct LoadOptions {
  std::string config_file = "/etc/itk.conf";
  std::string config_dir = "/etc/itk.d";
  bool config_file_explicit = false;  // a missing default /etc/itk.conf means "all defaults"; an explicit one is an error
  bool check_filesystem = true;       // DocumentRoot can be entered by the vhost's user (warnings), TLS files
};

// A log path with %v (and %%) replaced; `server_name` empty leaves it as it is.
std::string expand_log_path(const std::string& path, const std::string& server_name);

// Parses and validates everything; never throws for bad input, never stops at the first error.
LoadResult load_config(const LoadOptions& opts);

// Parses one INI text as if it were the file `name` (used by the loader and by tests).
// `is_dropin` selects which sections are allowed ([server] in the main file, [vhost] in drop-ins).
void parse_config_text(const std::string& text, const std::string& name, bool is_dropin, Config& out,
                       std::vector<ConfigError>& errors);

// Cross-vhost and semantic checks (duplicates, identities, ranges, filesystem) after every file is parsed.
// A DocumentRoot the vhost's user cannot enter is a warning (and VHost::document_root_problem).
void validate_config(Config& cfg, bool check_filesystem, std::vector<ConfigError>& errors,
                     std::vector<ConfigError>& warnings);

}  // namespace itk
