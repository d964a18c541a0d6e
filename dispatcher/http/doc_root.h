// A vhost's DocumentRoot as one connection sees it: opened by the tenant when the connection starts, so a
// deploy that switches a `current` link is served from the next connection on, beneath SymlinkRoot if set.
#pragma once

#include <string>

#include "config/config.h"
#include "sys/unique_fd.h"

namespace itk {

// Every file of the vhost is opened with openat2(RESOLVE_BENEATH) from `anchor` at `prefix` + its path:
// without SymlinkRoot the anchor is the DocumentRoot itself (prefix ""); with it, the anchor is
// SymlinkRoot and the prefix is where the DocumentRoot really is below it ("releases/5/"), so a link
// `uploads -> ../../shared/uploads` stays inside and anything beyond SymlinkRoot is refused by the kernel.
struct DocRoot {
  unique_fd anchor;          // O_PATH directory
  unique_fd dir;             // the DocumentRoot below SymlinkRoot, O_PATH directory; empty without SymlinkRoot
  int error = 0;             // errno when it could not be opened; then nothing else is set
  std::string prefix;        // "" or a relative path ending in '/'
  std::string real;          // the DocumentRoot's real path: DOCUMENT_ROOT, SCRIPT_FILENAME
  std::string anchor_real;   // the anchor's real path

  bool ok() const { return error == 0; }
  // The DocumentRoot: `dir`, or the anchor itself without SymlinkRoot.
  int dir_fd() const { return dir ? dir.get() : anchor.get(); }
  // `decoded_path` ("/a/b", from decode_request_path) relative to the anchor, for openat2_beneath.
  std::string rel(const std::string& decoded_path) const;
};

// A DocRoot without SymlinkRoot: `dir` (an open directory) is the anchor and the DocumentRoot. `real` is
// its real path when the caller knows it; else /proc is asked.
DocRoot doc_root_at(unique_fd dir, std::string real = {});

// Opens `vh`'s DocumentRoot as the calling process (the tenant), beneath its SymlinkRoot when it has one.
// A DocumentRoot that resolves outside SymlinkRoot fails with EXDEV, as openat2 does.
DocRoot open_doc_root(const VHost& vh);

}  // namespace itk
