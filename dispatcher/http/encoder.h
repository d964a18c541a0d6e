// A streaming gzip or brotli encoder for one response body, owning its codec state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/compression.h"

struct z_stream_s;
struct BrotliEncoderStateStruct;

namespace itk {

// Levels chosen for on-the-fly work (docs/performance.md, "Compression"): gzip 6 is zlib's default and
// within 1 % of level 9 on JavaScript at half its time; brotli 5 is the first quality smaller than gzip 6
// and costs about as much. Its window is 256 KiB: a worker's encoder then stays near 2.7 MiB (4 MiB windows
// would take 10 MiB), and text responses are rarely larger anyway.
constexpr int kGzipLevel = 6;
constexpr int kBrotliQuality = 5;
constexpr int kBrotliWindowBits = 18;

struct ZStreamEnd {
  void operator()(z_stream_s* z) const;
};
struct BrotliDestroy {
  void operator()(BrotliEncoderStateStruct* s) const;
};

class Encoder {
 public:
  // An encoder for `c` (gzip or br); `size_hint`, when known, lets brotli size its tables to the body.
  // ok() is false when the codec could not allocate its state.
  explicit Encoder(Coding c, uint64_t size_hint = 0);
  bool ok() const { return zs_ || br_; }
  Coding coding() const { return coding_; }

  enum class Op { more, flush, finish };
  // Compresses `in`, appending what the codec gives to `out`. `flush`: everything so far can be decoded
  // from `out` (a script that pauses is seen to pause); `finish`: the stream ends. False on a codec error.
  bool write(std::string_view in, std::string& out, Op op = Op::more);
  // Whether input was written since the last flush, so a flush would produce anything.
  bool pending() const { return pending_; }

 private:
  bool write_gzip(std::string_view in, std::string& out, Op op);
  bool write_brotli(std::string_view in, std::string& out, Op op);

  Coding coding_;
  std::unique_ptr<z_stream_s, ZStreamEnd> zs_;
  std::unique_ptr<BrotliEncoderStateStruct, BrotliDestroy> br_;
  bool pending_ = false;
};

}  // namespace itk
