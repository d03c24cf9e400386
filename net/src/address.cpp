// address.cpp: parsing "host:port" (no I/O) and resolving names.
#include <gort/net/address.h>

#include <arpa/inet.h>
#include <netdb.h>

#include <strings.h>
#include <cstring>

#include <gort/blocking.h>

namespace gort::net {

namespace {

Error invalid(const char* why) { return Error(Errc::kInvalidAddress, 0, why); }

Result<uint16_t> parse_port(std::string_view s) {
  if (s.empty()) return invalid("missing port in address");
  if (s.size() > 5) return invalid("invalid port (expected 0-65535)");
  unsigned value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return invalid("invalid port (expected a decimal number 0-65535)");
    value = value * 10 + unsigned(c - '0');
  }
  if (value > 65535) return invalid("invalid port (expected 0-65535)");
  return uint16_t(value);
}

// Numeric host -> address, or kInvalidAddress if it is not numeric.
Result<Address> numeric(const std::string& host, uint16_t port) {
  sockaddr_storage ss{};
  if (host.find(':') == std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) return invalid("not a numeric IP address");
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_in));
  }
  if (host.find('%') != std::string::npos) return invalid("IPv6 zones are not supported");
  auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) return invalid("not a numeric IPv6 address");
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_in6));
}

Result<std::vector<Address>> lookup(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  // getaddrinfo blocks its thread (DNS, /etc/hosts): run it on a helper so
  // this fiber's worker keeps running others.
  int rc = gort::blocking([&] { return getaddrinfo(host.c_str(), nullptr, &hints, &list); });
  if (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_FAIL)
    return Error(Errc::kHostNotFound, 0, "the name did not resolve");
  if (rc == EAI_SYSTEM) return Error::from_errno(errno);
  if (rc != 0) return Error(Errc::kHostNotFound, 0, gai_strerror(rc));
  std::vector<Address> out;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    auto a = Address::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
    if (!a) continue;
    sockaddr_storage ss{};
    std::memcpy(&ss, a->sockaddr_ptr(), a->length());
    if (ss.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port);
    if (ss.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port);
    out.push_back(*Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), a->length()));
  }
  freeaddrinfo(list);
  if (out.empty()) return Error(Errc::kHostNotFound, 0, "no IPv4 or IPv6 address");
  return out;
}

}  // namespace

Result<HostPort> split_host_port(std::string_view s) {
  HostPort hp;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    std::size_t close = s.find(']');
    if (close == std::string_view::npos) return invalid("missing ']' in address");
    std::string_view rest = s.substr(close + 1);
    if (rest.empty()) return invalid("missing port in address");
    if (rest.front() != ':') return invalid("unexpected characters after ']' (expected \":port\")");
    hp.host = std::string(s.substr(1, close - 1));
    if (hp.host.empty()) return invalid("empty host in brackets");
    port = rest.substr(1);
  } else {
    std::size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) return invalid("missing port in address");
    std::string_view host = s.substr(0, colon);
    if (host.find(':') != std::string_view::npos)
      return invalid("too many colons in address (write IPv6 hosts in brackets: [::1]:80)");
    if (host.find_first_of("[]") != std::string_view::npos) return invalid("unexpected '[' or ']' in address");
    hp.host = std::string(host);
    port = s.substr(colon + 1);
  }
  auto p = parse_port(port);
  if (!p) return p.error();
  hp.port = *p;
  return hp;
}

Result<Address> Address::parse(std::string_view s) {
  auto hp = split_host_port(s);
  if (!hp) return hp.error();
  if (hp->host.empty()) return invalid("missing host in address");
  return numeric(hp->host, hp->port);
}

Result<Address> Address::from_sockaddr(const sockaddr* sa, socklen_t len) {
  Address a;
  if (sa->sa_family == AF_INET && len >= socklen_t(sizeof(sockaddr_in))) {
    a.length_ = sizeof(sockaddr_in);
  } else if (sa->sa_family == AF_INET6 && len >= socklen_t(sizeof(sockaddr_in6))) {
    a.length_ = sizeof(sockaddr_in6);
  } else {
    return invalid("not an IPv4 or IPv6 socket address");
  }
  std::memcpy(&a.storage_, sa, a.length_);
  return a;
}

Address Address::ipv4_loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return *from_sockaddr(reinterpret_cast<sockaddr*>(&a), sizeof a);
}

Address Address::ipv6_loopback(uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  a.sin6_addr = in6addr_loopback;
  return *from_sockaddr(reinterpret_cast<sockaddr*>(&a), sizeof a);
}

uint16_t Address::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string Address::host() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (family() == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
  if (family() == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
  return buf;
}

std::string Address::to_string() const {
  std::string h = host();
  if (family() == AF_INET6) h = "[" + h + "]";
  return h + ":" + std::to_string(port());
}

bool operator==(const Address& a, const Address& b) {
  return a.length_ == b.length_ && std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
}

Result<std::vector<Address>> resolve_tcp(std::string_view s, ResolveFor use) {
  const bool passive = use == ResolveFor::kListen;
  auto hp = split_host_port(s);
  if (!hp) return hp.error();
  const std::string& host = hp->host;
  if (host.empty()) {
    if (!passive) return std::vector<Address>{Address::ipv4_loopback(hp->port)};
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_port = htons(hp->port);
    return std::vector<Address>{*Address::from_sockaddr(reinterpret_cast<sockaddr*>(&any), sizeof any)};
  }
  if (strcasecmp(host.c_str(), "localhost") == 0)
    return std::vector<Address>{Address::ipv4_loopback(hp->port), Address::ipv6_loopback(hp->port)};
  auto n = numeric(host, hp->port);
  if (n) return std::vector<Address>{*n};
  if (host.find(':') != std::string::npos) return n.error();  // a malformed IPv6 literal, not a name
  return lookup(host, hp->port);
}

}  // namespace gort::net
