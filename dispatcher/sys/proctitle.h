// Process titles as `ps` shows them ("itkd: worker example.org 203.0.113.5 GET /index.php since 12:00:05"),
// written over main()'s argv area as nginx and PostgreSQL do. The short name of a process (comm, set with
// PR_SET_NAME: itk-worker...) is separate and unchanged.
//
// A title is readable wherever /proc/PID/cmdline is: under itk.service (ProtectProc=invisible, workers
// non-dumpable) by root alone. It holds a request's method and path, never its query string (tokens,
// passwords) nor any header.
#pragma once

#include <initializer_list>
#include <string_view>

namespace itk {

// Once, in main(), after the command line is parsed (argv[] is overwritten from then on): takes the argv
// strings and the environment strings that follow them as the title's space, and moves the environment
// to the heap (getenv and setenv go on working; program_invocation_name too). A title that outgrows the
// argv strings (a worker's) overwrites the original environment, which /proc/PID/environ then no longer
// shows; a short one (the master's) leaves it as it was.
void proctitle_init(int argc, char** argv);

// "itkd: " and `parts` joined by spaces, cut to the space there is; control characters show as '?'.
// Only memory is written (no system call), so a worker sets one per request. Nothing without init.
void proctitle_set(std::initializer_list<std::string_view> parts);

}  // namespace itk
