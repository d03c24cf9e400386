// address.h: TCP endpoint addresses and "host:port" strings.
//
//   "127.0.0.1:8080"   IPv4
//   "[::1]:8080"       IPv6: brackets are required when the host has colons
//   "localhost:8080"   127.0.0.1, then ::1; resolved without any I/O
//   ":8080"            no host: every interface to listen on, loopback to dial
//   "example.org:80"   other names go through getaddrinfo on a gort::blocking
//                      helper thread (the calling fiber parks, its worker runs on)
//
// Ports are decimal, 0-65535 (service names are not looked up). Parsing
// (split_host_port, Address::parse) does no I/O.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <gort/net/result.h>

namespace gort::net {

struct HostPort {
  std::string host;  // without brackets; empty when the string had none
  uint16_t port = 0;
};

// Splits "host:port" / "[v6]:port" (Go's net.SplitHostPort plus the port).
Result<HostPort> split_host_port(std::string_view address);

class Address {
 public:
  Address() = default;
  // Numeric hosts only ("1.2.3.4:80", "[::1]:80"); never resolves a name.
  static Result<Address> parse(std::string_view address);
  static Result<Address> from_sockaddr(const sockaddr* sa, socklen_t len);
  static Address ipv4_loopback(uint16_t port);
  static Address ipv6_loopback(uint16_t port);

  int family() const { return storage_.ss_family; }  // AF_INET, AF_INET6, AF_UNSPEC if empty
  uint16_t port() const;
  std::string host() const;       // "127.0.0.1", "::1"
  std::string to_string() const;  // "127.0.0.1:80", "[::1]:80"
  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const { return length_; }

  friend bool operator==(const Address& a, const Address& b);

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

// What the addresses are for: an empty host means loopback to dial, and
// every interface to listen on (getaddrinfo's AI_PASSIVE).
enum class ResolveFor { kDial, kListen };

// Every address `address` names, in the order to try them.
Result<std::vector<Address>> resolve_tcp(std::string_view address, ResolveFor use = ResolveFor::kDial);

}  // namespace gort::net
