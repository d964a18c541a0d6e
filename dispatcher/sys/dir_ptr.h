// DirPtr: the one owner of a directory stream; closedir happens in exactly one place.
#pragma once

#include <dirent.h>

#include <memory>
#include <string>

#include "sys/unique_fd.h"

namespace itk {

struct DirCloser {
  void operator()(DIR* d) const { (void)closedir(d); }
};

using DirPtr = std::unique_ptr<DIR, DirCloser>;

// opendir; empty with errno set on failure.
inline DirPtr open_dir(const std::string& path) { return DirPtr(opendir(path.c_str())); }

// A stream over the directory `fd`, which it then owns (it is closed either way); empty with errno set.
inline DirPtr open_dir(unique_fd fd) {
  DirPtr d(fdopendir(fd.get()));
  if (d) (void)fd.release();
  return d;
}

}  // namespace itk
