// Where an open descriptor is in the file system now, as the kernel names it in /proc/self/fd.
#pragma once

#include <string>

namespace itk {

// The absolute path `fd` names now, from /proc/self/fd; empty when /proc cannot tell (not mounted, a path
// longer than PATH_MAX, or not a path at all). Callers that depend on it for a
// security decision refuse when it is empty.
std::string fd_path(int fd);

}  // namespace itk
