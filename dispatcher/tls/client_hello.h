// The server name (SNI) of a TLS ClientHello, read from the first bytes of a connection that the acceptor
// peeks at, so that it can pick the vhost and pass the connection on before any handshake. Decoding only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace itk {

// The most the acceptor peeks at: a full record, 16 KiB of handshake (the most one record carries, RFC 8446
// §5.1) and its 5-byte header; a hello fragmented over several records pays their headers from the same
// budget. Real ClientHellos are far below it: about 500 bytes, 1.8 KB with a post-quantum key share, a few
// KB with many PSK identities or ECH. It is what one connection may hold of the acceptor's memory before
// it is routed, the same order as a request head (LimitHeadBuffers counts it); OpenSSL itself takes hellos
// up to 128 KiB, which no client sends.
constexpr size_t kMaxClientHelloBytes = 5 + 16384;

enum class HelloParse { incomplete, complete, not_tls, malformed };

// Parses the ClientHello at the start of `bytes` (everything peeked so far). complete: `server_name` is
// the requested name, lower-cased without a trailing dot, or empty when the client sent none (the default
// vhost serves it). incomplete: more bytes could complete it (never with kMaxClientHelloBytes bytes).
// not_tls: the first byte is not a TLS handshake record (plain HTTP on the https port). malformed: `why`
// says what is wrong. Only the bytes up to the end of the ClientHello are read, so the answer for a
// prefix holds for every longer input: incomplete until complete (or malformed).
HelloParse parse_client_hello(std::string_view bytes, std::string& server_name, std::string& why);

}  // namespace itk
