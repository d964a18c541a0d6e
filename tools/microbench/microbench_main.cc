// Entry point of itk-microbench: Google Benchmark's own main, kept in a file of its own so each
// benchmark file only registers its cases.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
