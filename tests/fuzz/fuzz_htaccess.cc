// Fuzz target: the .htaccess parser on arbitrary text, as a worker reads a file its tenant (or any
// application the tenant installed) wrote; then its answers for a few file names. Every deny and note
// must name a line of the text, and no input may crash or throw.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/htaccess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > itk::kMaxHtaccessSize) return 0;  // larger files are refused before they are parsed
  std::string_view text(reinterpret_cast<const char*>(data), size);
  itk::Htaccess h = itk::parse_htaccess(text);
  const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  for (const itk::HtaccessDeny& d : h.denies) check(d.line >= 1 && d.line <= lines);
  for (const itk::HtaccessNote& n : h.notes) check(n.line >= 1 && n.line <= lines && !n.text.empty());
  const int dir = h.denies_directory();
  check(dir == 0 || (dir >= 1 && dir <= lines));
  for (const char* name : {"index.php", ".user.ini", "start.txt", "a.log", "wp-config.php", "x"}) {
    int line = h.denies_file(name);
    // A deny of the whole directory covers every file in it.
    check(dir == 0 || line != 0);
    check(line >= 0 && line <= lines);
  }
  return 0;
}
