// The standby master's fixed answer and its rule for saying errors once.
#include "proc/standby.h"

#include <gtest/gtest.h>

namespace itk {
namespace {

TEST(Standby, AnswerIsACompleteClosing503WithRetryAfter) {
  std::string r = standby_response();
  ASSERT_EQ(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("\r\nRetry-After: 10\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos);
  size_t end = r.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  std::string body = r.substr(end + 4);
  EXPECT_NE(r.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
}

ConfigError error(const std::string& file, int line, const std::string& message) {
  ConfigError e;
  e.origin.file = file;
  e.origin.line = line;
  e.key = "Timeout";
  e.message = message;
  return e;
}

TEST(Standby, SameErrorsComparesEveryErrorInOrder) {
  std::vector<ConfigError> a{error("/etc/itk.conf", 3, "bad"), error("/etc/itk.d/a.conf", 4, "worse")};
  std::vector<ConfigError> b = a;
  EXPECT_TRUE(same_errors(a, b));
  b[1].origin.line = 5;
  EXPECT_FALSE(same_errors(a, b));
  b = a;
  b.pop_back();
  EXPECT_FALSE(same_errors(a, b));
  EXPECT_TRUE(same_errors({}, {}));
}

}  // namespace
}  // namespace itk
