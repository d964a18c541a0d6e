// Who a process runs as: the one encoding of a uid, gid, supplementary groups and nice value that
// the configuration resolves, the spawner and FastCGI launcher apply, and workers compare.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace itk {

struct IdRange {
  uint32_t min = 0;
  uint32_t max = 0;
  bool contains(uint32_t v) const { return v >= min && v <= max; }
};

// Resolved by the master at load, so no process that applies it ever calls NSS.
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (getgrouplist for names; just {gid} for #numeric)
  std::optional<int> nice;    // NiceValue, -20..19; none: the spawner's nice is kept
  std::string user_name;      // for logs; "#1001" for numeric ids

  // Two vhosts of one identity may share a worker: the name is only how it was written.
  bool operator==(const Identity& o) const {
    return uid == o.uid && gid == o.gid && groups == o.groups && nice == o.nice;
  }
};

}  // namespace itk
