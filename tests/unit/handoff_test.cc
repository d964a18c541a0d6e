// The acceptor -> worker hand-over channel: a connection fd, its scoreboard entry and its bytes arrive
// whole; a closed channel or a bad message gives no connection.
#include "proc/handoff.h"

#include "config/address_range.h"
#include "http/proxy_protocol.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "sys/unique_fd.h"

namespace itk {
namespace {

struct Channel {
  Channel() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    acceptor.reset(sv[0]);
    worker.reset(sv[1]);
  }
  unique_fd acceptor, worker;
};

TEST(Handoff, ConnectionEntryAndBytesArrive) {
  Channel ch;
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  unique_fd r(p[0]), w(p[1]);
  std::string head = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\nbody";
  // The addresses a PROXY header stated go with the connection.
  ConnAddrs addrs;
  std::string why;
  ProxyHeader ph;
  ASSERT_EQ(proxy_parse("PROXY TCP4 203.0.113.7 192.0.2.1 4444 443\r\n", ph, why), ProxyParse::complete) << why;
  Handoff sent;
  sent.entry = 42;
  sent.addrs = ph.addrs;
  sent.bytes = head;
  ASSERT_TRUE(handoff_send(ch.acceptor.get(), r.get(), sent));
  ASSERT_TRUE(handoff_idle(ch.worker.get()));
  Handoff h;
  unique_fd got(handoff_receive(ch.worker.get(), h));
  ASSERT_TRUE(got);
  EXPECT_EQ(h.entry, 42u);
  EXPECT_EQ(h.flags, 0u);
  EXPECT_EQ(h.bytes, head);
  addrs = h.addrs;
  EXPECT_EQ(address_text(addrs.client), "203.0.113.7");
  EXPECT_EQ(port_text(addrs.client), "4444");
  EXPECT_EQ(port_text(addrs.server), "443");
  // The worker's "idle" came first and is what the acceptor reads.
  EXPECT_TRUE(handoff_read_idle(ch.acceptor.get()));
  // The fd is the same pipe, and close-on-exec.
  ASSERT_EQ(write(w.get(), "x", 1), 1);
  char c = 0;
  EXPECT_EQ(read(got.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  EXPECT_TRUE(fcntl(got.get(), F_GETFD) & FD_CLOEXEC);
}

TEST(Handoff, ClosedChannelGivesNoConnection) {
  Channel ch;
  ch.acceptor.reset();
  Handoff h;
  EXPECT_FALSE(handoff_idle(ch.worker.get()));
  EXPECT_EQ(handoff_receive(ch.worker.get(), h), -1);
}

TEST(Handoff, NothingSentIsNoConnection) {
  Channel ch;
  Handoff h;
  EXPECT_EQ(handoff_receive(ch.worker.get(), h), -1);  // does not wait
  EXPECT_TRUE(h.bytes.empty());
}

TEST(Handoff, MessageWithoutAConnectionIsRefused) {
  Channel ch;
  ASSERT_EQ(send(ch.acceptor.get(), "12345678", 8, 0), 8);
  Handoff h;
  EXPECT_EQ(handoff_receive(ch.worker.get(), h), -1);
  EXPECT_TRUE(h.bytes.empty());
}

TEST(Handoff, PayloadMustFitTheKind) {
  Channel ch;
  Handoff h;
  EXPECT_FALSE(handoff_send(ch.acceptor.get(), 0, h));  // plain HTTP comes with its head
  h.bytes = std::string(256 * 1024, 'x');
  EXPECT_FALSE(handoff_send(ch.acceptor.get(), 0, h));
  h.flags = kHandoffTls;  // TLS comes with nothing read
  h.bytes = "x";
  EXPECT_FALSE(handoff_send(ch.acceptor.get(), 0, h));
}

TEST(Handoff, TlsConnectionComesWithoutBytes) {
  Channel ch;
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  unique_fd r(p[0]), w(p[1]);
  Handoff sent;
  sent.entry = 7;
  sent.flags = kHandoffTls;
  ASSERT_TRUE(handoff_send(ch.acceptor.get(), r.get(), sent));
  Handoff h;
  unique_fd got(handoff_receive(ch.worker.get(), h));
  ASSERT_TRUE(got);
  EXPECT_EQ(h.entry, 7u);
  EXPECT_EQ(h.flags, kHandoffTls);
  EXPECT_TRUE(h.bytes.empty());
}

TEST(Handoff, AnythingButIdleIsNotIdle) {
  Channel ch;
  ASSERT_EQ(send(ch.worker.get(), "X", 1, 0), 1);
  EXPECT_FALSE(handoff_read_idle(ch.acceptor.get()));
  ch.worker.reset();
  EXPECT_FALSE(handoff_read_idle(ch.acceptor.get()));
}

}  // namespace
}  // namespace itk
