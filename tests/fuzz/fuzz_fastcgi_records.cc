// Fuzz target: the FastCGI record decoder the worker reads its app's answers with, and END_REQUEST.
// Besides memory errors it checks that any split of the stream gives the same records and the same error.
// Input: byte 0 chooses the split; the rest is what the app sent.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "script/fastcgi_protocol.h"

namespace {


struct Decoded {
  std::vector<itk::fcgi::Record> records;
  int last = 0;
};

void drain(itk::fcgi::RecordReader& r, Decoded& d) {
  itk::fcgi::Record rec;
  while ((d.last = r.next(rec)) == 1) {
    check(rec.content.size() <= 65535);
    d.records.push_back(rec);
    itk::fcgi::EndRequest end;
    if (rec.type == itk::fcgi::end_request) (void)itk::fcgi::parse_end_request(rec.content, end);
  }
}

Decoded decode(std::string_view in, size_t cut) {
  itk::fcgi::RecordReader r;
  Decoded d;
  r.feed(in.substr(0, cut));
  drain(r, d);
  if (d.last >= 0) {
    r.feed(in.substr(cut));
    drain(r, d);
  }
  return d;
}

bool same(const Decoded& a, const Decoded& b) {
  if (a.last != b.last || a.records.size() != b.records.size()) return false;
  for (size_t i = 0; i < a.records.size(); i++)
    if (a.records[i].type != b.records[i].type || a.records[i].id != b.records[i].id ||
        a.records[i].content != b.records[i].content)
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  check(same(decode(in, in.size()), decode(in, in.empty() ? 0 : data[0] % (in.size() + 1))));
  return 0;
}
