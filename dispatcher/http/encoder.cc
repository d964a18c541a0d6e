// gzip (zlib) and brotli (libbrotlienc) behind one streaming interface, for static files and script output.
#include "http/encoder.h"

#include <brotli/encode.h>
#include <zlib.h>

namespace itk {
namespace {

// Output grows in steps of this size; a 64 KiB piece of text compresses to well under it.
constexpr size_t kOutStep = 16384;

}  // namespace

void ZStreamEnd::operator()(z_stream_s* z) const {
  (void)deflateEnd(z);
  delete z;
}

void BrotliDestroy::operator()(BrotliEncoderStateStruct* s) const { BrotliEncoderDestroyInstance(s); }

Encoder::Encoder(Coding c, uint64_t size_hint) : coding_(c) {
  if (c == Coding::gzip) {
    // Heap-held: zlib's state points back at its z_stream, which must therefore never move.
    auto z = std::make_unique<z_stream>();
    // windowBits 15 + 16: a gzip wrapper; memLevel 8: zlib's default, 256 KiB of state in all.
    if (deflateInit2(z.get(), kGzipLevel, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK) zs_.reset(z.release());
  } else if (c == Coding::br) {
    br_.reset(BrotliEncoderCreateInstance(nullptr, nullptr, nullptr));
    if (br_) {
      (void)BrotliEncoderSetParameter(br_.get(), BROTLI_PARAM_QUALITY, kBrotliQuality);
      (void)BrotliEncoderSetParameter(br_.get(), BROTLI_PARAM_LGWIN, kBrotliWindowBits);
      (void)BrotliEncoderSetParameter(br_.get(), BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
      if (size_hint > 0 && size_hint < (1u << 30))
        (void)BrotliEncoderSetParameter(br_.get(), BROTLI_PARAM_SIZE_HINT, static_cast<uint32_t>(size_hint));
    }
  }
}

bool Encoder::write(std::string_view in, std::string& out, Op op) {
  if (!in.empty()) pending_ = true;
  if (op != Op::more) pending_ = false;
  if (zs_) return write_gzip(in, out, op);
  if (br_) return write_brotli(in, out, op);
  return false;
}

bool Encoder::write_gzip(std::string_view in, std::string& out, Op op) {
  z_stream* z = zs_.get();
  z->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z->avail_in = static_cast<uInt>(in.size());
  const int flush = op == Op::finish ? Z_FINISH : op == Op::flush ? Z_SYNC_FLUSH : Z_NO_FLUSH;
  for (;;) {
    size_t had = out.size();
    out.resize(had + kOutStep);
    z->next_out = reinterpret_cast<Bytef*>(out.data() + had);
    z->avail_out = kOutStep;
    int rc = deflate(z, flush);
    out.resize(had + kOutStep - z->avail_out);
    if (rc == Z_STREAM_END) return true;
    // Z_BUF_ERROR only says no progress was possible, which a flush with nothing new can be.
    if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
    // Done when the codec left room in the output: it has nothing more to give for this call.
    if (z->avail_out != 0 && z->avail_in == 0 && op != Op::finish) return true;
  }
}

bool Encoder::write_brotli(std::string_view in, std::string& out, Op op) {
  BrotliEncoderState* s = br_.get();
  const BrotliEncoderOperation bop = op == Op::finish  ? BROTLI_OPERATION_FINISH
                                     : op == Op::flush ? BROTLI_OPERATION_FLUSH
                                                       : BROTLI_OPERATION_PROCESS;
  size_t avail_in = in.size();
  const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
  for (;;) {
    size_t avail_out = 0;
    if (!BrotliEncoderCompressStream(s, bop, &avail_in, &next_in, &avail_out, nullptr, nullptr)) return false;
    size_t n = 0;
    const uint8_t* produced = BrotliEncoderTakeOutput(s, &n);
    out.append(reinterpret_cast<const char*>(produced), n);
    if (avail_in > 0 || BrotliEncoderHasMoreOutput(s)) continue;
    if (op == Op::finish && !BrotliEncoderIsFinished(s)) continue;
    return true;
  }
}

}  // namespace itk
