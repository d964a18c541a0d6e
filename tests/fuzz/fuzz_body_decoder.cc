// Fuzz target: the request body decoder (Content-Length and chunked, with LimitRequestBody). Besides
// memory errors it checks that any split of the bytes decodes exactly as the whole does.
// Input: byte 0 chooses chunked or a Content-Length (bytes 1-2), byte 3 the split; the rest is the body.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/body_decoder.h"

using itk::BodyDecoder;

namespace {


struct Result {
  BodyDecoder::State state;
  std::string out;
  size_t consumed = 0;
  int status = 0;
};

Result decode(std::optional<uint64_t> length, bool chunked, std::string_view in, size_t cut) {
  BodyDecoder d(length, chunked, 4096);
  Result r;
  size_t used = 0;
  r.state = d.feed(in.substr(0, cut), r.out, used);
  r.consumed = used;
  if (r.state == BodyDecoder::State::more) {
    // Everything fed while more is wanted is taken.
    check(used == cut);
    r.state = d.feed(in.substr(cut), r.out, used);
    r.consumed += used;
  }
  r.status = r.state == BodyDecoder::State::error ? d.error_status() : 0;
  check(d.decoded() == r.out.size());
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const bool chunked = data[0] & 1;
  const std::optional<uint64_t> length =
      chunked ? std::nullopt : std::optional<uint64_t>(static_cast<uint64_t>(data[1]) << 8 | data[2]);
  std::string_view in(reinterpret_cast<const char*>(data) + 4, size - 4);
  const size_t cut = in.empty() ? 0 : data[3] % (in.size() + 1);

  Result whole = decode(length, chunked, in, in.size());
  Result split = decode(length, chunked, in, cut);
  check(whole.state == split.state && whole.status == split.status);
  if (whole.state != BodyDecoder::State::error) check(whole.out == split.out && whole.consumed == split.consumed);
  check(whole.out.size() <= 4096);
  if (whole.state == BodyDecoder::State::complete && !chunked) check(whole.out.size() == *length);
  if (whole.state == BodyDecoder::State::error) check(whole.status == 400 || whole.status == 413);
  return 0;
}
