// Fuzz target: the ClientHello an acceptor peeks at to route a TLS connection by SNI, checked against OpenSSL's
// server reading the same bytes. Whenever OpenSSL's ClientHello callback sees one well-formed host name, itk
// must route by that name (lower-cased), or refuse it for a rule OpenSSL leaves to later; an answer never
// changes when more bytes arrive, except from incomplete.
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "tls/client_hello.h"
#include "fuzz_check.h"

namespace {

// What OpenSSL's server saw of the hello when its callback ran (before it judges the extensions' contents,
// the cipher list or the compression methods).
struct OpensslView {
  bool reached = false;
  bool has_server_name = false;
  std::string server_name_ext;
  size_t ciphers = 0;
  size_t compressions = 0;
};

int on_client_hello(SSL* ssl, int* alert, void*) {
  auto* view = static_cast<OpensslView*>(SSL_get_app_data(ssl));
  view->reached = true;
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1) {
    view->has_server_name = true;
    view->server_name_ext.assign(reinterpret_cast<const char*>(p), len);
  }
  view->ciphers = SSL_client_hello_get0_ciphers(ssl, &p);
  view->compressions = SSL_client_hello_get0_compression_methods(ssl, &p);
  *alert = SSL_AD_INTERNAL_ERROR;
  return SSL_CLIENT_HELLO_ERROR;  // seen enough: no handshake
}

SSL_CTX* server_context() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_server_method());
    check(c != nullptr);
    SSL_CTX_set_min_proto_version(c, 0);
    SSL_CTX_set_client_hello_cb(c, on_client_hello, nullptr);
    return c;
  }();
  return ctx;
}

OpensslView openssl_view(std::string_view in) {
  OpensslView view;
  SSL* ssl = SSL_new(server_context());
  SSL_set_app_data(ssl, &view);
  BIO* rbio = BIO_new_mem_buf(in.data(), static_cast<int>(in.size()));
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_accept_state(ssl);
  (void)SSL_do_handshake(ssl);
  SSL_free(ssl);
  return view;
}

// RFC 6066 §3 as OpenSSL applies it after the callback: one host_name entry filling the list, 1 to 255
// bytes, no NUL. Empty when the extension is not that.
std::string single_host_name(std::string_view ext) {
  if (ext.size() < 5) return "";
  const size_t list = static_cast<uint8_t>(ext[0]) << 8 | static_cast<uint8_t>(ext[1]);
  const size_t len = static_cast<uint8_t>(ext[3]) << 8 | static_cast<uint8_t>(ext[4]);
  if (list + 2 != ext.size() || ext[2] != 0 || len + 5 != ext.size() || len > 255) return "";
  std::string name(ext.substr(5));
  if (name.find('\0') != std::string::npos) return "";
  return name;
}

// The names itk refuses and OpenSSL would take: bytes beyond letters, digits, '-', '.', '_', or an empty
// label (a leading dot, two in a row; "." alone).
bool refused_name(std::string_view name) {
  return name.starts_with('.') || name.find("..") != std::string_view::npos || !std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_';
  });
}

std::string routed(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string name, why;
  const itk::HelloParse st = itk::parse_client_hello(in, name, why);
  if (st == itk::HelloParse::malformed || st == itk::HelloParse::not_tls) check(!why.empty());
  if (st == itk::HelloParse::incomplete) check(size < itk::kMaxClientHelloBytes);
  if (st != itk::HelloParse::complete) check(name.empty());
  if (st == itk::HelloParse::complete) {
    check(name.size() <= 255 && !refused_name(name) && routed(name) == name);
  }

  // Prefixes: incomplete, then (from the hello's end on) the same answer; or incomplete, then malformed.
  if (st == itk::HelloParse::complete || st == itk::HelloParse::malformed) {
    bool settled = false;
    for (size_t n = 0; n < size; n += 1 + n / 8) {
      std::string part_name, part_why;
      const itk::HelloParse part = itk::parse_client_hello(in.substr(0, n), part_name, part_why);
      if (settled) check(part == st && part_name == name);
      if (part == itk::HelloParse::incomplete) continue;
      check(part == st && part_name == name);
      settled = true;
    }
  }

  const OpensslView openssl = openssl_view(in);
  if (!openssl.reached) return 0;
  const std::string host = openssl.has_server_name ? single_host_name(openssl.server_name_ext) : "";
  if (st == itk::HelloParse::complete) {
    // A name only where OpenSSL saw one, and never past an extension OpenSSL will refuse.
    check(openssl.has_server_name == !name.empty());
    check(!openssl.has_server_name || !host.empty());
  }
  if (host.empty()) return 0;
  if (st == itk::HelloParse::complete) {
    check(name == routed(host));
    return 0;
  }
  // itk's stricter rules, each of which OpenSSL applies only after its callback or not at all.
  const bool stricter = refused_name(host) || openssl.ciphers == 0 || openssl.ciphers % 2 ||
                        openssl.compressions == 0 || why.find("twice") != std::string::npos ||
                        why.find("record version") != std::string::npos || size >= itk::kMaxClientHelloBytes;
  check(st == itk::HelloParse::malformed && stricter);
  return 0;
}
