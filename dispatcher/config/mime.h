// File extension -> media type, from a built-in table plus /etc/mime.types; built once per config load.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

namespace itk {

class MimeTypes {
 public:
  MimeTypes();                               // built-in table of common web types
  void load_file(const std::string& path);   // adds mime.types(5) entries; a missing file is ignored
  // Media type for a file name by its last extension (case-insensitive), exactly as configured;
  // unknown or no extension -> "application/octet-stream".
  const std::string& lookup(std::string_view filename) const;

 private:
  std::unordered_map<std::string, std::string> by_ext_;  // lower-case extension without dot
  std::string default_ = "application/octet-stream";
};

}  // namespace itk
