// `itkctl status`: the master's answer (control_protocol.h) as a table for people or JSON for panels.
#pragma once

#include <string>

#include "ctl/control_protocol.h"

namespace itk {

// A summary line, then one row per vhost:
//   itkd 812, generation 3: 2 vhosts, workers 5 busy/7 idle, fastcgi 2, served 48210, refused 3; cgroups: on
//   VHOST         BUSY  IDLE   PHP    SERVED   503  LIMIT
//   example.org      3     4     2     40000     3  3/20
// A vhost at its MaxClientsVHost ends with "at limit"; a refused reload is said last.
std::string format_status_table(const ServerStatus& s);

// {"pid": N, "generation": N, "reloads": N, "reload_error": "..." or null, "unit": "..." or null,
//  "cgroups": "...", "acceptors": {"busy": N, "idle": N}, "workers": N, "idle": N, "fastcgi": N,
//  "served": N, "refused": N, "at_limit": N, "vhosts": [{"name": "...", "workers": N, "idle": N,
//  "fastcgi": N, "served": N, "refused": N, "max_clients": N, "at_limit": bool}, ...]}
std::string status_json(const ServerStatus& s);

}  // namespace itk
