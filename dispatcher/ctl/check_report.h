// What a configuration check says (`itkd --check`, `itkctl check`): every warning and error as
// FILE:LINE: KEY: message, or one JSON object for panels and scripts.
#pragma once

#include <cstdio>
#include <string>

#include "config/config.h"

namespace itk {

// Prints warnings and errors to `err` (each with its sd-daemon priority prefix when `journal`, so that
// `journalctl -p err` finds them), then the verdict: "PROG: configuration has N error(s)" to `err`, or
// "PROG: configuration OK: FILE and DIR, N vhost(s)" to `out`. Returns the exit status: 0 valid, 1 not.
int print_check(const LoadResult& r, const LoadOptions& opts, const char* prog, bool journal, FILE* out, FILE* err);

// {"ok": bool, "vhosts": N (null when the configuration did not load), "errors": [...], "warnings": [...]},
// each entry {"file": "...", "line": N (0: the whole file), "key": "..." (null: not about one key),
// "message": "..."}; one line, ending with a newline.
std::string check_json(const LoadResult& r);

}  // namespace itk
