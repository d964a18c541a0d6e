// What a fuzz target asserts of itk's answer to an input: a broken promise stops the run like a crash,
// so libFuzzer keeps the input.
#pragma once

#include <cstdlib>

inline void check(bool ok) {
  if (!ok) abort();
}
