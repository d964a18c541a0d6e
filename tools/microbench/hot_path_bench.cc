// The acceptor's per-request work measured in-process: parse a request head (llhttp through
// itk::HeadParser) and find its vhost among 10,000 (itk::VHostTable).
#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>
#include <vector>

#include "config/config.h"
#include "http/http_request.h"
#include "sys/log.h"
#include "config/vhost_table.h"

namespace {

constexpr size_t kVHosts = 10000;
// More distinct requests than fit in L1, so the lookup is not measured on one hot bucket only.
constexpr size_t kRequests = 4096;

// Every vhost has an exact alias and a wildcard alias, as shared-hosting configs usually do.
const itk::Config& config() {
  static const itk::Config cfg = [] {
    itk::Config c;
    c.vhosts.reserve(kVHosts);
    for (size_t i = 0; i < kVHosts; i++) {
      itk::VHost vh;
      vh.server_name = itk::strprintf("site%zu.example.net", i);
      vh.aliases = {itk::strprintf("www.site%zu.example.net", i), itk::strprintf("*.site%zu.example.org", i)};
      vh.document_root = itk::strprintf("/srv/www/site%zu", i);
      vh.identity.uid = static_cast<uid_t>(10000 + i);
      vh.identity.gid = static_cast<gid_t>(10000 + i);
      vh.identity.groups = {vh.identity.gid};
      c.vhosts.push_back(std::move(vh));
    }
    return c;
  }();
  return cfg;
}

const itk::VHostTable& table() {
  static const itk::VHostTable t(config());
  return t;
}

// Host values spread over the table: server names, exact aliases with a port, wildcard matches
// (which cost one probe per label), and unknown names that fall through to the default vhost.
std::string host_for(size_t i) {
  size_t site = (i * 7919) % kVHosts;
  switch (i % 4) {
    case 0: return itk::strprintf("site%zu.example.net", site);
    case 1: return itk::strprintf("www.site%zu.example.net:80", site);
    case 2: return itk::strprintf("shop.site%zu.example.org", site);
    default: return itk::strprintf("unknown%zu.example.com", site);
  }
}

// A head as a browser sends it (about 450 bytes), with the Host line in the usual place.
const std::vector<std::string>& requests() {
  static const std::vector<std::string> reqs = [] {
    std::vector<std::string> v;
    v.reserve(kRequests);
    for (size_t i = 0; i < kRequests; i++) {
      v.push_back(itk::strprintf(
          "GET /images/logo-%zu.png?v=3 HTTP/1.1\r\n"
          "Host: %s\r\n"
          "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0\r\n"
          "Accept: image/avif,image/webp,*/*\r\n"
          "Accept-Language: en-US,en;q=0.5\r\n"
          "Accept-Encoding: gzip, deflate, br\r\n"
          "Referer: http://www.example.net/index.html\r\n"
          "Connection: keep-alive\r\n"
          "Cookie: session=0123456789abcdef0123456789abcdef\r\n"
          "Sec-Fetch-Dest: image\r\n"
          "\r\n",
          i, host_for(i).c_str()));
    }
    return v;
  }();
  return reqs;
}

const std::vector<std::string>& hosts() {
  static const std::vector<std::string> h = [] {
    std::vector<std::string> v;
    for (size_t i = 0; i < kRequests; i++) v.push_back(host_for(i));
    return v;
  }();
  return h;
}

// What the acceptor does once the head has arrived in one read: a fresh parser per connection,
// one parse call, one lookup.
void BM_ParseHeadAndLookup(benchmark::State& state) {
  const auto& reqs = requests();
  const itk::VHostTable& t = table();
  const itk::HeadLimits limits;
  size_t i = 0;
  for (auto _ : state) {
    itk::HeadParser parser(limits);
    const std::string& req = reqs[i++ % kRequests];
    if (parser.parse(req) != itk::HeadState::complete) {
      state.SkipWithError("request head did not parse");
      break;
    }
    const itk::VHost* vh = t.lookup(parser.head().host);
    benchmark::DoNotOptimize(vh);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["vhosts"] = static_cast<double>(kVHosts);
}
BENCHMARK(BM_ParseHeadAndLookup);

// The parse alone, to tell the two costs apart.
void BM_ParseHead(benchmark::State& state) {
  const auto& reqs = requests();
  const itk::HeadLimits limits;
  size_t i = 0;
  for (auto _ : state) {
    itk::HeadParser parser(limits);
    if (parser.parse(reqs[i++ % kRequests]) != itk::HeadState::complete) {
      state.SkipWithError("request head did not parse");
      break;
    }
    benchmark::DoNotOptimize(parser.head().host.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ParseHead);

// The lookup alone among 10,000 vhosts (normalisation included).
void BM_VHostLookup(benchmark::State& state) {
  const auto& h = hosts();
  const itk::VHostTable& t = table();
  size_t i = 0;
  for (auto _ : state) {
    const itk::VHost* vh = t.lookup(h[i++ % kRequests]);
    benchmark::DoNotOptimize(vh);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["vhosts"] = static_cast<double>(kVHosts);
}
BENCHMARK(BM_VHostLookup);

}  // namespace
