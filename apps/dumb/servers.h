// dumb/servers.h -- the table of server variants (servers.def) as C++ values.
//
// The binaries look themselves up here (summary for --help, default port);
// the test suites iterate over it; so does the server benchmark.

#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace dumb {

enum class Protocol : std::uint8_t { dumb, chat };

// Expected outcome of one scenario: is a PING answered promptly while another
// client occupies the server?
enum class Outcome : std::uint8_t {
  answered,  // yes: the other client does not hold up this one
  starved,   // no: the PING waits until the other client is done
  none,      // not applicable (chat servers)
};

// The course's three scenarios and the greedy clients, in the column order
// of servers.def.
enum class Scenario : std::uint8_t { wait, stream, trickle, greedy };
inline constexpr std::array<std::string_view, 4> kScenarioNames{"wait", "stream", "trickle", "greedy"};

// How many connections a server serves at once (servers.def's concurrency).
enum class Concurrency : std::uint8_t {
  one,   // one; the rest wait in the listen backlog
  pool,  // up to --workers (threads or processes); the rest wait
  all,   // every connection it has accepted
};

struct ServerRow {
  std::string_view name;     // binary name
  Protocol protocol;
  std::array<Outcome, 4> expected;  // indexed by Scenario
  Concurrency concurrency;
  std::string_view summary;
  std::uint16_t default_port() const noexcept { return protocol == Protocol::dumb ? 8090 : 8091; }
  Outcome expect(Scenario s) const noexcept { return expected[static_cast<std::size_t>(s)]; }
};

inline constexpr ServerRow kServers[] = {
#define GORT_SERVER(name, protocol, wait, stream, trickle, greedy, concurrency, link, summary)               \
  {#name, Protocol::protocol, {Outcome::wait, Outcome::stream, Outcome::trickle, Outcome::greedy}, \
   Concurrency::concurrency, summary},
#include "dumb/servers.def"
#undef GORT_SERVER
};

// The row named `name`, or nullptr.
constexpr const ServerRow* find_server(std::string_view name) noexcept {
  for (const ServerRow& row : kServers)
    if (row.name == name) return &row;
  return nullptr;
}

}  // namespace dumb
