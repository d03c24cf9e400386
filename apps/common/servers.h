// common/servers.h -- the table of server variants (servers.def) as C++ values.
//
// The binaries look themselves up here (summary for --help, default port);
// the test suites iterate over it; so does the server benchmark.

#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace common {

enum class Protocol : std::uint8_t { kDumb, kChat };

// Expected outcome of one scenario: is a PING answered promptly while another
// client occupies the server?
enum class Outcome : std::uint8_t {
  kAnswered,  // yes: the other client does not hold up this one
  kStarved,   // no: the PING waits until the other client is done
  kNone,      // not applicable (chat servers)
};

// The course's three scenarios and the greedy clients, in the column order
// of servers.def.
enum class Scenario : std::uint8_t { kWait, kStream, kTrickle, kGreedy };
inline constexpr std::array<std::string_view, 4> kScenarioNames{"wait", "stream", "trickle", "greedy"};

// How many connections a server serves at once (servers.def's concurrency).
enum class Concurrency : std::uint8_t {
  kOne,   // one; the rest wait in the listen backlog
  kPool,  // up to --workers (threads or processes); the rest wait
  kAll,   // every connection it has accepted
};

struct ServerRow {
  std::string_view name;  // binary name
  Protocol protocol;
  std::array<Outcome, 4> expected;  // indexed by Scenario
  Concurrency concurrency;
  std::string_view summary;
  std::uint16_t default_port() const noexcept { return protocol == Protocol::kDumb ? 8090 : 8091; }
  Outcome expect(Scenario s) const noexcept { return expected[static_cast<std::size_t>(s)]; }
};

// servers.def's words, which CMake and the benchmark scripts also read, as
// the enumerators they name.
namespace servers_def {
inline constexpr Protocol dumb = Protocol::kDumb, chat = Protocol::kChat;
inline constexpr Outcome answered = Outcome::kAnswered, starved = Outcome::kStarved, none = Outcome::kNone;
inline constexpr Concurrency one = Concurrency::kOne, pool = Concurrency::kPool, all = Concurrency::kAll;
}  // namespace servers_def

inline constexpr ServerRow kServers[] = {
#define GORT_SERVER(name, protocol, wait, stream, trickle, greedy, concurrency, link, summary) \
  {#name,                                                                                      \
   servers_def::protocol,                                                                      \
   {servers_def::wait, servers_def::stream, servers_def::trickle, servers_def::greedy},        \
   servers_def::concurrency,                                                                   \
   summary},
#include "chat/servers.def"
#include "dumb/servers.def"
#undef GORT_SERVER
};

// The row named `name`, or nullptr.
constexpr const ServerRow* find_server(std::string_view name) noexcept {
  for (const ServerRow& row : kServers)
    if (row.name == name) return &row;
  return nullptr;
}

}  // namespace common
