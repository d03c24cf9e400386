// usage.h: the examples' command line. None of them takes an argument but
// fanout.cpp (a count); each says what it shows on --help.
#pragma once

#include <cstdio>
#include <cstring>

// Returns -1 to run the example, else the exit status: 0 after --help (or
// -h) printed `about` to stdout, 2 after an unknown argument, beyond the
// `max_args` the example takes, printed it to stderr.
inline int example_usage(int argc, char** argv, const char* usage, const char* about, int max_args = 0) {
  bool help = argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0);
  if (!help && argc - 1 <= max_args) return -1;
  std::fprintf(help ? stdout : stderr, "usage: %s %s\n%s\n", argv[0], usage, about);
  return help ? 0 : 2;
}
