// CGI pieces that need no process: response header parsing, environment building.
#include <gtest/gtest.h>

#include <algorithm>

#include "script/cgi_env.h"
#include "script/cgi_response.h"

using namespace itk;

TEST(CgiHead, FindsEndWithLfOrCrlf) {
  EXPECT_EQ(find_cgi_head_end("Content-Type: text/plain\n\nbody"), 26u);
  EXPECT_EQ(find_cgi_head_end("Content-Type: text/plain\r\n\r\nbody"), 28u);
  EXPECT_EQ(find_cgi_head_end("Content-Type: text/plain\r\n"), std::string::npos);
}

TEST(CgiHead, StatusLocationAndHeaders) {
  CgiHead h;
  ASSERT_EQ(parse_cgi_head("Status: 404 Gone Away\r\nContent-Type: text/html\r\nX-A: b\r\nConnection: close\r\n"
                           "Transfer-Encoding: chunked\r\nServer: evil\r\n\r\n",
                           h),
            "");
  EXPECT_EQ(h.status, 404);
  EXPECT_EQ(h.reason, "Gone Away");
  ASSERT_EQ(h.headers.size(), 2u);  // Connection, Transfer-Encoding and Server are itk's
  EXPECT_EQ(h.headers[0].first, "Content-Type");
  EXPECT_EQ(h.headers[1].second, "b");
}

TEST(CgiHead, LocationRules) {
  CgiHead local;
  ASSERT_EQ(parse_cgi_head("Location: /other/page\n\n", local), "");
  EXPECT_TRUE(local.local_redirect);
  CgiHead remote;
  ASSERT_EQ(parse_cgi_head("Location: https://example.org/\n\n", remote), "");
  EXPECT_FALSE(remote.local_redirect);
  EXPECT_EQ(remote.status, 302);
  CgiHead with_status;
  ASSERT_EQ(parse_cgi_head("Status: 301 Moved\nLocation: /x\n\n", with_status), "");
  EXPECT_FALSE(with_status.local_redirect);
  EXPECT_EQ(with_status.status, 301);
}

TEST(CgiHead, ContentLength) {
  CgiHead h;
  ASSERT_EQ(parse_cgi_head("Content-Length: 42\n\n", h), "");
  EXPECT_EQ(h.content_length.value_or(0), 42u);
  CgiHead two;
  EXPECT_NE(parse_cgi_head("Content-Length: 1\nContent-Length: 2\n\n", two), "");
  CgiHead bad;
  EXPECT_NE(parse_cgi_head("Content-Length: -1\n\n", bad), "");
}

TEST(CgiHead, MalformedBlocks) {
  for (const char* bad : {"no colon here\n\n", ": empty name\n\n", "Bad Name: x\n\n", "Status: abc\n\n",
                          "Status: 2000 x\n\n", "X: a\x01b\n\n",
                          // 1xx are interim: never the final status of a response
                          "Status: 101 Switching Protocols\n\n", "Status: 100\n\n", "Status: 199 x\n\n",
                          // an empty first line would leave the real header lines in the body
                          "\nStatus: 302\nLocation: /x\n\n", "\r\nStatus: 404\r\n\r\n", "\n\n"}) {
    CgiHead h;
    EXPECT_NE(parse_cgi_head(bad, h), "") << bad;
  }
}

namespace {
bool has(const std::vector<std::string>& env, const std::string& entry) {
  return std::find(env.begin(), env.end(), entry) != env.end();
}
bool has_name(const std::vector<std::string>& env, const std::string& name) {
  return std::any_of(env.begin(), env.end(), [&](const std::string& e) { return e.rfind(name + "=", 0) == 0; });
}
}  // namespace

TEST(CgiEnv, MetaVariables) {
  VHost vh;
  vh.server_name = "a.test";
  vh.document_root = "/srv/a";
  RequestHead head;
  head.method = "POST";
  head.target = "/x.cgi/more?q=1";
  head.content_length = 11;
  head.headers = {{"host", "a.test"}, {"content-type", "text/plain"}, {"content-length", "11"}, {"proxy", "evil:1"},
                  {"x_under", "spoof"}, {"accept", "a"}, {"accept", "b"}, {"cookie", "c=1"}, {"cookie", "d=2"}};
  CgiRequest r;
  r.vhost = &vh;
  r.document_root = "/srv/a";  // the real path the connection opened
  r.head = &head;
  r.script_name = "/x.cgi";
  r.script_filename = "/srv/a/x.cgi";
  r.path_info = "/more";
  r.query = "q=1";
  r.remote_addr = "127.0.0.1";
  r.remote_port = "5555";
  r.server_addr = "127.0.0.1";
  r.server_port = "80";
  auto env = cgi_environment(r);
  for (const char* e : {"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=POST", "SCRIPT_NAME=/x.cgi",
                        "SCRIPT_FILENAME=/srv/a/x.cgi", "PATH_INFO=/more", "PATH_TRANSLATED=/srv/a/more",
                        "QUERY_STRING=q=1", "REQUEST_URI=/x.cgi/more?q=1", "CONTENT_LENGTH=11",
                        "CONTENT_TYPE=text/plain", "HTTP_HOST=a.test", "REDIRECT_STATUS=200", "SERVER_NAME=a.test",
                        "DOCUMENT_ROOT=/srv/a", "REMOTE_ADDR=127.0.0.1", "SERVER_PORT=80",
                        "HTTP_ACCEPT=a, b", "HTTP_COOKIE=c=1; d=2", "PATH=/usr/local/bin:/usr/bin:/bin"})
    EXPECT_TRUE(has(env, e)) << e;
  EXPECT_FALSE(has_name(env, "HTTP_PROXY"));  // httpoxy
  EXPECT_FALSE(has_name(env, "HTTP_X_UNDER"));
  EXPECT_FALSE(has_name(env, "HTTP_CONTENT_LENGTH"));
  EXPECT_FALSE(has_name(env, "HTTPS"));  // plain HTTP
  EXPECT_TRUE(has(env, "REQUEST_SCHEME=http"));
  EXPECT_TRUE(std::is_sorted(env.begin(), env.end()));

  // Over TLS, scripts are told so (WordPress's is_ssl(), Secure cookies, redirects).
  r.https = true;
  r.server_port = "443";
  env = cgi_environment(r);
  for (const char* e : {"HTTPS=on", "REQUEST_SCHEME=https", "SERVER_PORT=443"}) EXPECT_TRUE(has(env, e)) << e;
}

TEST(CgiEnv, NoPathInfoMeansNoPathTranslated) {
  VHost vh;
  vh.document_root = "/srv/a";
  RequestHead head;
  head.method = "GET";
  CgiRequest r;
  r.vhost = &vh;
  r.head = &head;
  auto env = cgi_environment(r);
  EXPECT_FALSE(has_name(env, "PATH_INFO"));
  EXPECT_FALSE(has_name(env, "PATH_TRANSLATED"));
  EXPECT_FALSE(has_name(env, "CONTENT_LENGTH"));
}
