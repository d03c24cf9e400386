// gort::debug::serve: the request head parser (no I/O), the endpoint's
// answers over loopback across worker counts, a real Prometheus scraping it
// and headless Chromium drawing its page.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "net_support.h"

using namespace std::chrono_literals;
using namespace gort::net;
using gort::debug::parse_request_head;
using gort::debug::RequestHead;

namespace {

TEST(RequestHeadParser, CompleteIncompleteBadAndTooLarge) {
  auto ok = parse_request_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(ok.status, RequestHead::kOk);
  EXPECT_EQ(ok.method, "GET");
  EXPECT_EQ(ok.path, "/metrics");
  EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r\nHost: a\r\n").status, RequestHead::kIncomplete);
  EXPECT_EQ(parse_request_head("").status, RequestHead::kIncomplete);
  for (const char* bad : {"GET /\r\n\r\n", "GET / HTTP/1.1 x\r\n\r\n", " / HTTP/1.1\r\n\r\n",
                          "GET metrics HTTP/1.1\r\n\r\n", "GET /a\x01 HTTP/1.1\r\n\r\n", "GET / SPDY/3\r\n\r\n"})
    EXPECT_EQ(parse_request_head(bad).status, RequestHead::kBad) << bad;
  std::string big = "GET / HTTP/1.1\r\nX: " + std::string(gort::debug::kMaxRequestHead, 'a');
  EXPECT_EQ(parse_request_head(big).status, RequestHead::kTooLarge);
  EXPECT_EQ(parse_request_head(big + "\r\n\r\n").status, RequestHead::kTooLarge);
}

// One request on a fresh connection; the whole answer (Connection: close).
std::string http(const std::string& address, const std::string& request) {
  auto c = dial_tcp(address, 5s);
  if (!c) return "dial: " + c.error().message();
  if (!c->write_all(request)) return "write failed";
  c->set_deadline(Clock::now() + 10s);
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = c->read(buf, sizeof buf);
    if (!n || *n == 0) break;
    out.append(buf, *n);
  }
  return out;
}

std::string get(const std::string& address, const std::string& path) {
  return http(address, "GET " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
}

class DebugServerTest : public gort_test::WorkersTest {};

TEST_P(DebugServerTest, AnswersEveryKindOfRequest) {
  run([] {
    gort::debug::DebugOptions options;
    options.extra_metrics = [] {
      return std::string("# HELP app_things_total Things.\n# TYPE app_things_total counter\napp_things_total 7\n");
    };
    auto server = gort::debug::serve("127.0.0.1:0", options);
    ASSERT_TRUE(server) << server.error().message();
    std::string a = (*server)->address();
    std::string metrics = get(a, "/metrics");
    EXPECT_EQ(metrics.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << metrics;
    EXPECT_NE(metrics.find("\ngort_fibers "), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("\napp_things_total 7\n"), std::string::npos) << metrics;
    // Serving that request parked fibers on sockets the poller then woke.
    std::string again = get(a, "/metrics");
    std::size_t at = again.find("\ngort_netpoll_wakeups_total ");
    ASSERT_NE(at, std::string::npos) << again;
    EXPECT_GE(std::atof(again.c_str() + at + std::strlen("\ngort_netpoll_wakeups_total ")), 1.0) << again;
    std::string page = get(a, "/");
    EXPECT_EQ(page.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
    EXPECT_NE(page.find("Content-Type: text/html"), std::string::npos);
    EXPECT_NE(page.find("fetch(\"/metrics\""), std::string::npos);
    EXPECT_EQ(page.find("http://"), std::string::npos) << "the page fetches nothing from elsewhere";
    std::string head = http(a, "HEAD /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
    EXPECT_EQ(head.find("gort_fibers"), std::string::npos) << "HEAD has no body";
    EXPECT_EQ(get(a, "/nothing").rfind("HTTP/1.1 404 ", 0), 0u);
    EXPECT_EQ(http(a, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405 ", 0), 0u);
    EXPECT_EQ(http(a, "garbage\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
    EXPECT_EQ(http(a, "GET / HTTP/1.1\r\nX: " + std::string(10000, 'x')).rfind("HTTP/1.1 431 ", 0), 0u);
    (*server)->close();
    EXPECT_FALSE(dial_tcp(a, 2s)) << "still listening after close()";
  });
}

// A connection's fiber shows both ends' addresses in the dump, as Go's net
// errors name a connection.
TEST_P(DebugServerTest, TheDumpNamesAConnectionsAddresses) {
  run([] {
    auto listener = gort::net::listen_tcp("127.0.0.1:0");
    ASSERT_TRUE(listener) << listener.error().message();
    auto dialed = gort::net::dial_tcp(listener->local_address()->to_string());
    ASSERT_TRUE(dialed) << dialed.error().message();
    auto accepted = listener->accept();
    ASSERT_TRUE(accepted) << accepted.error().message();
    gort::WaitGroup wg;
    wg.add(1);
    gort::spawn(gort::SpawnOptions{.name = "conn-reader"}, [&] {
      char c;
      (void)accepted->read(&c, 1);
      wg.done();
    });
    std::string want = "\"conn-reader\" [I/O read fd ";
    std::string ends =
        " " + accepted->local_address()->to_string() + "->" + accepted->remote_address()->to_string() + ", ";
    std::string text;
    for (int i = 0; i < 1000 && text.find(want) == std::string::npos; ++i) {
      gort::sleep_for(1ms);
      text = gort::debug::fibers_text();
    }
    std::size_t at = text.find(want);
    ASSERT_NE(at, std::string::npos) << text;
    EXPECT_NE(text.substr(at, text.find('\n', at) - at).find(ends), std::string::npos) << text;
    ASSERT_TRUE(dialed->write_all("x"));
    wg.wait();
  });
}

// /debug/fibers serves the fiber dump: the server's own acceptor shows
// as waiting in accept on its descriptor, and a fiber of ours by name.
TEST_P(DebugServerTest, ServesTheFiberDump) {
  run([] {
    auto server = gort::debug::serve("127.0.0.1:0");
    ASSERT_TRUE(server) << server.error().message();
    gort::Chan<int> never;
    gort::WaitGroup wg;
    wg.add(1);
    gort::spawn(gort::SpawnOptions{.name = "idle-receiver"}, [&] {
      (void)never.recv();
      wg.done();
    });
    // Until the receiver has parked and the acceptor is back in accept():
    // the request that makes the dump may run while the acceptor, on
    // another worker, is still handing it over.
    std::string page;
    for (int i = 0; i < 1000 && (page.find("\"idle-receiver\" [chan receive") == std::string::npos ||
                                 page.find("\"debug acceptor\" [accept fd ") == std::string::npos);
         ++i) {
      page = get((*server)->address(), "/debug/fibers");
      gort::sleep_for(1ms);
    }
    EXPECT_EQ(page.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << page;
    EXPECT_NE(page.find("Content-Type: text/plain"), std::string::npos) << page;
    EXPECT_NE(page.find("\r\n\r\ngort: " + std::to_string(gort::worker_count()) + " workers"), std::string::npos)
        << page;
    EXPECT_NE(page.find("\"idle-receiver\" [chan receive, "), std::string::npos) << page;
    EXPECT_NE(page.find("\"debug acceptor\" [accept fd "), std::string::npos) << page;
    // ... on its address (a listener: the local one alone).
    EXPECT_NE(page.find(" " + (*server)->address() + ", "), std::string::npos) << page;
    EXPECT_NE(page.find("\"debug request\" [running]"), std::string::npos) << page;
    never.close();
    wg.wait();
    (*server)->close();
  });
}

TEST_P(DebugServerTest, TooManyRequestsAtOnceGet503) {
  run([] {
    auto server = gort::debug::serve("127.0.0.1:0");
    ASSERT_TRUE(server) << server.error().message();
    std::string a = (*server)->address();
    std::vector<Conn> silent;  // connected, never send a request: each holds a place
    for (int i = 0; i < 32; ++i) {
      auto c = dial_tcp(a, 5s);
      ASSERT_TRUE(c) << c.error().message();
      silent.push_back(std::move(*c));
    }
    bool refused = false;
    for (int i = 0; i < 100 && !refused; ++i) {  // the acceptor counts them as it accepts
      refused = get(a, "/metrics").rfind("HTTP/1.1 503 ", 0) == 0;
      if (!refused) gort::sleep_for(10ms);
    }
    EXPECT_TRUE(refused) << "a 33rd request at once was served";
    for (auto& c : silent) (void)c.close();
    bool served = false;
    for (int i = 0; i < 200 && !served; ++i) {  // the places come back as their fibers see the close
      served = get(a, "/metrics").rfind("HTTP/1.1 200 ", 0) == 0;
      if (!served) gort::sleep_for(10ms);
    }
    EXPECT_TRUE(served) << "no request served after the others left";
    (*server)->close();
  });
}

GORT_INSTANTIATE(DebugServerTest);

// --- real components: Prometheus and Chromium, started here --------------

std::string temp_dir() {
  std::string t = testing::TempDir() + "gort_debug_XXXXXX";
  if (mkdtemp(t.data()) == nullptr) return "";
  return t;
}

// Runs a shell command from a fiber (on the blocking pool); its output.
std::string shell(const std::string& command, int* status = nullptr) {
  return gort::blocking([&] {
    std::string out;
    std::FILE* p = popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) return out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    int st = pclose(p);
    if (status) *status = st;
    return out;
  });
}

TEST(RealComponents, PrometheusScrapesTheEndpoint) {
  const char* prometheus = "/usr/bin/prometheus";
  ASSERT_EQ(access(prometheus, X_OK), 0) << prometheus << " is not installed (scripts/install-deps installs it)";
  gort::run([&] {
    auto server = gort::debug::serve("127.0.0.1:0");
    ASSERT_TRUE(server) << server.error().message();
    std::string dir = temp_dir();
    ASSERT_FALSE(dir.empty());
    std::ofstream(dir + "/prometheus.yml") << "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: gort\n"
                                              "    static_configs:\n      - targets: ['"
                                           << (*server)->address() << "']\n";
    std::string web = "127.0.0.1:" + std::to_string(gort_test::unused_listen_port());
    std::string command = std::string(prometheus) + " --config.file=" + dir +
                          "/prometheus.yml --storage.tsdb.path=" + dir + "/data --web.listen-address=" + web + " > " +
                          dir + "/log 2>&1 & echo $!";
    pid_t pid = std::atoi(shell(command).c_str());
    ASSERT_GT(pid, 0);
    // Query the series back through the HTTP API until a scrape landed.
    std::string answer;
    bool found = false;
    for (int i = 0; i < 600 && !found; ++i) {  // a minute at most: a scrape lands within seconds
      gort::sleep_for(100ms);
      answer = get(web, "/api/v1/query?query=gort_fibers");
      found = answer.find("\"status\":\"success\"") != std::string::npos &&
              answer.find("\"gort_fibers\"") != std::string::npos;
    }
    kill(pid, SIGTERM);
    gort::blocking([&] {
      waitpid(pid, nullptr, 0);
      return 0;
    });
    EXPECT_TRUE(found) << "Prometheus never returned gort_fibers; last answer:\n"
                       << answer << "\nits log:\n"
                       << shell("tail -20 " + dir + "/log");
    (void)shell("rm -rf " + dir);
    (*server)->close();
  });
}

TEST(RealComponents, ChromiumDrawsThePage) {
  const char* chromium = "/usr/bin/chromium";
  ASSERT_EQ(access(chromium, X_OK), 0) << chromium << " is not installed (scripts/install-deps installs it)";
  gort::run([&] {
    auto server = gort::debug::serve("127.0.0.1:0");
    ASSERT_TRUE(server) << server.error().message();
    // Some activity to draw: fibers coming and going while the page polls.
    std::atomic<bool> stop{false};
    gort::WaitGroup load;
    load.add(1);
    go_spawn([&] {
      while (!stop.load()) {
        gort::WaitGroup wg;
        wg.add(20);
        for (int i = 0; i < 20; ++i)
          go_spawn([&] {
            gort::sleep_for(5ms);
            wg.done();
          });
        wg.wait();
      }
      load.done();
    });
    std::string dir = temp_dir();
    std::string flags =
        " --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=" + dir + " --virtual-time-budget=4000 ";
    std::string url = "http://" + (*server)->address() + "/";
    std::string dom = shell(std::string(chromium) + flags + "--dump-dom " + url);
    std::string shot = testing::TempDir() + "gort_debug_page.png";
    (void)shell(std::string(chromium) + flags + "--window-size=1200,900 --screenshot=" + shot + " " + url);
    stop = true;
    load.wait();
    int charts = 0, drawn = 0;
    // The drawn charts: <svg id="svg-NAME" data-points="N"> (the script's
    // own template, which the dump also holds, has "${" in its id).
    for (std::size_t at = 0; (at = dom.find("<svg id=\"svg-", at)) != std::string::npos; at += 13) {
      std::size_t end = dom.find('>', at), points = dom.find("data-points=\"", at);
      if (end == std::string::npos || points > end || dom.substr(at, end - at).find("${") != std::string::npos)
        continue;
      ++charts;
      drawn += std::atoi(dom.c_str() + points + 13) >= 2;
    }
    EXPECT_GE(charts, 7) << dom.substr(0, 2000);
    EXPECT_EQ(drawn, charts) << "charts with fewer than two samples; the page:\n" << dom.substr(0, 3000);
    EXPECT_NE(dom.find("live, "), std::string::npos) << "the page never heard from the program";
    struct stat st {};
    EXPECT_EQ(stat(shot.c_str(), &st), 0) << "no screenshot at " << shot;
    std::printf("screenshot: %s\n", shot.c_str());
    (void)shell("rm -rf " + dir);
    (*server)->close();
  });
}

}  // namespace
