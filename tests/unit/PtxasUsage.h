// ptxas's resource report (NVRTC with --ptxas-options=-v) per kernel, for the
// tests that hold generated CUDA to "no spills".
#pragma once

#include <map>
#include <regex>
#include <sstream>
#include <string>

namespace tlc::testing {

struct PtxasUsage {
  int registers = -1, spillStores = -1, spillLoads = -1, stack = -1;
};

/// Kernel name -> its registers, spills and stack frame, from an NVRTC log.
inline std::map<std::string, PtxasUsage> ptxasUsage(const std::string &log) {
  std::map<std::string, PtxasUsage> out;
  std::string current;
  std::smatch m;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (std::regex_search(line, m, std::regex("Compiling entry function '(\\w+)'"))) current = m[1];
    else if (std::regex_search(line, m, std::regex("(\\d+) bytes stack frame, (\\d+) bytes spill stores, (\\d+) bytes spill loads"))) {
      out[current].stack = std::stoi(m[1]);
      out[current].spillStores = std::stoi(m[2]);
      out[current].spillLoads = std::stoi(m[3]);
    } else if (std::regex_search(line, m, std::regex("Used (\\d+) registers")))
      out[current].registers = std::stoi(m[1]);
  }
  return out;
}

} // namespace tlc::testing
