// JSON text for machine-readable output (itkctl --json): string escaping and nothing more. Values that
// are numbers or booleans are written by the callers as they are.
#pragma once

#include <string>
#include <string_view>

namespace itk {

// Appends `s` as a JSON string, quotes included: `"` and `\` escaped, control characters and DEL as
// \uXXXX (or \n, \t...), and bytes that are not valid UTF-8 as U+FFFD, so the output is always valid
// JSON whatever a configuration file or a path holds.
void json_append_string(std::string& out, std::string_view s);

// The same as a new string.
std::string json_string(std::string_view s);

}  // namespace itk
