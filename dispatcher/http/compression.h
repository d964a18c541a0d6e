// Which content coding a response gets: Accept-Encoding negotiation, the media types worth compressing,
// when a precompressed file beside the original may stand for it, and the validator of an encoded variant.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>
#include <vector>

namespace itk {

enum class Coding { identity, gzip, br };

// "gzip", "br"; empty for identity.
std::string_view coding_name(Coding c);
// The file suffix of a precompressed variant: ".gz", ".br" (gzip_static, brotli_static); empty for identity.
std::string_view coding_suffix(Coding c);

// The codings a client takes, best first: br and gzip with a q-value above 0 (RFC 9110 §12.5.3; `*` stands for
// whichever of them is not named, `x-gzip` is gzip), ordered by q-value, br first when equal. Identity is
// what remains: it is never refused, as nginx and Apache never refuse it either (`identity;q=0` alone gets
// the identity body rather than a 406). A missing header (nullptr) or an empty one takes no coding.
struct AcceptedCodings {
  Coding first = Coding::identity;
  Coding second = Coding::identity;
  bool accepts(Coding c) const { return c != Coding::identity && (first == c || second == c); }
  // What to compress with as the response is written: gzip whenever the client takes it. Brotli costs
  // about twice gzip's CPU at the levels used for some 4 % fewer bytes, which pays only when the bytes
  // are compressed once: a precompressed `.br` is still preferred in the client's order.
  Coding on_the_fly() const { return accepts(Coding::gzip) ? Coding::gzip : first; }
};
AcceptedCodings negotiate_codings(const std::string* accept_encoding);

// Whether `content_type` (a Content-Type value: parameters and case ignored) is one of `types` ("type/subtype"
// or "type/*", lower-case). text/event-stream never is: each event must reach the client when it is written.
bool compressible_type(std::string_view content_type, const std::vector<std::string>& types);

// A precompressed file stands for `original` only when it is a regular file modified no earlier: a `.gz`
// left behind by an older version of the file would serve stale content.
bool precompressed_usable(const struct stat& original, const struct stat& variant);

// The validator of the variant `c` of a representation whose own is `etag`: weak (the encoder's bytes may
// differ between builds and a precompressed file may be remade), with the coding appended as Apache's
// mod_deflate does, so a cache never takes one variant's validator for another's.
std::string encoded_etag(std::string_view etag, Coding c);

}  // namespace itk
