// The argv area as the process title.
#include "sys/proctitle.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace itk {
namespace {

// The only mutable state of this file: where the title goes, forced on us by how the kernel shows
// /proc/PID/cmdline. Each process writes its own copy (fork copies the pages).
char* g_area = nullptr;
size_t g_size = 0;  // bytes, the final NUL included
size_t g_used = 0;  // length of the title written last
// Every environment string copied at start, kept here too: unsetenv() (LISTEN_FDS and the rest) drops
// pointers from environ, and the copies must stay owned for the process's life rather than leak.
char** g_env_copies = nullptr;

}  // namespace

void proctitle_init(int argc, char** argv) {
  if (argc <= 0 || !argv || !argv[0] || g_area) return;
  char* end = argv[0] + strlen(argv[0]) + 1;
  for (int i = 1; i < argc; i++)
    if (argv[i] == end) end = argv[i] + strlen(argv[i]) + 1;
  const char* argv_end = end;
  // The environment's strings usually follow argv's: copied to the heap, their space joins the title's.
  size_t n = 0;
  while (environ[n]) n++;
  char** env = static_cast<char**>(calloc(n + 1, sizeof(char*)));
  g_env_copies = static_cast<char**>(calloc(n + 1, sizeof(char*)));
  if (!env || !g_env_copies) return;
  for (size_t i = 0; i < n; i++) {
    if (environ[i] == end) end = environ[i] + strlen(environ[i]) + 1;
    env[i] = g_env_copies[i] = strdup(environ[i]);
    if (!env[i]) return;  // keeps the old environment and no title: nothing is half moved
  }
  environ = env;
  // glibc's names of the program point into argv[0] (error messages use them).
  program_invocation_name = strdup(program_invocation_name);
  if (const char* slash = strrchr(program_invocation_name, '/')) program_invocation_short_name = const_cast<char*>(slash + 1);
  else program_invocation_short_name = program_invocation_name;
  g_area = argv[0];
  g_size = static_cast<size_t>(end - argv[0]);
  // The first title clears what is left of argv; the environment's strings stay readable in
  // /proc/PID/environ until a title longer than argv needs their space (a worker's).
  g_used = static_cast<size_t>(argv_end - argv[0]) - 1;
}

void proctitle_set(std::initializer_list<std::string_view> parts) {
  if (!g_area || g_size < 2) return;
  const size_t cap = g_size - 1;
  size_t len = 0;
  const auto put = [&](std::string_view s) {
    const size_t n = std::min(s.size(), cap - len);
    for (size_t i = 0; i < n; i++) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      g_area[len + i] = c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c);
    }
    len += n;
  };
  put("itkd:");
  for (std::string_view p : parts) {
    put(" ");
    put(p);
  }
  // What the previous title had beyond this one is cleared: /proc/PID/cmdline ends at the first NUL.
  if (g_used > len) memset(g_area + len, 0, g_used - len);
  g_area[len] = '\0';
  g_used = len;
}

}  // namespace itk
