// Address parsing: every malformed form is a distinct, clear error; no I/O.
#include <gtest/gtest.h>

#include <gort/net.h>

using namespace gort::net;

TEST(Address, ParsesIPv4AndIPv6) {
  auto a = Address::parse("127.0.0.1:8080");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");

  auto b = Address::parse("[::1]:80");
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->family(), AF_INET6);
  EXPECT_EQ(b->to_string(), "[::1]:80");
  EXPECT_EQ(*b, Address::ipv6_loopback(80));
}

TEST(Address, SplitsHostPort) {
  auto hp = split_host_port(":0");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "");
  EXPECT_EQ(hp->port, 0);
  hp = split_host_port("example.org:65535");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "example.org");
  EXPECT_EQ(hp->port, 65535);
}

TEST(Address, LocalhostAndEmptyHostResolveWithoutLookup) {
  auto l = resolve_tcp("localhost:7");
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0], Address::ipv4_loopback(7));
  EXPECT_EQ((*l)[1], Address::ipv6_loopback(7));
  auto e = resolve_tcp(":9");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)[0], Address::ipv4_loopback(9));
  auto p = resolve_tcp(":9", ResolveFor::kListen);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->front().host(), "0.0.0.0");
}

struct BadAddress {
  const char* input;
  const char* detail_contains;
};

class AddressErrors : public ::testing::TestWithParam<BadAddress> {};

TEST_P(AddressErrors, AreInvalidAddressWithAReason) {
  auto r = Address::parse(GetParam().input);
  ASSERT_FALSE(r) << GetParam().input;
  EXPECT_EQ(r.error(), Errc::kInvalidAddress);
  EXPECT_NE(std::string(r.error().detail()).find(GetParam().detail_contains), std::string::npos)
      << GetParam().input << " -> " << r.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AddressErrors,
    ::testing::Values(BadAddress{"127.0.0.1", "missing port"}, BadAddress{"127.0.0.1:", "missing port"},
                      BadAddress{"::1:80", "too many colons"}, BadAddress{"[::1]", "missing port"},
                      BadAddress{"[::1:80", "missing ']'"}, BadAddress{"[::1]x80", "after ']'"},
                      BadAddress{"1.2.3.4:65536", "invalid port"}, BadAddress{"1.2.3.4:http", "invalid port"},
                      BadAddress{"1.2.3.4:-1", "invalid port"}, BadAddress{"1.2.3.4:123456", "invalid port"},
                      BadAddress{":80", "missing host"}, BadAddress{"1.2.3.400:80", "not a numeric"},
                      BadAddress{"[::1::2]:80", "not a numeric IPv6"}, BadAddress{"[fe80::1%lo]:80", "zones"},
                      BadAddress{"a]b:80", "unexpected"}, BadAddress{"[]:80", "empty host"}));

TEST(Address, ErrorsAreDistinctValues) {
  EXPECT_FALSE(Error(Errc::kEof) == Errc::kTimeout);
  EXPECT_EQ(Error::from_errno(ECONNRESET), Errc::kReset);
  EXPECT_EQ(Error::from_errno(EPIPE), Errc::kBrokenPipe);
  EXPECT_EQ(Error::from_errno(EADDRINUSE), Errc::kAddressInUse);
  Error other = Error::from_errno(EACCES);
  EXPECT_EQ(other, Errc::kSystem);
  EXPECT_EQ(other.sys_errno(), EACCES);
  EXPECT_NE(other.message().find("EACCES"), std::string::npos) << other.message();
}
