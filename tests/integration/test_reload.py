# SIGHUP reloads: new vhosts served after READY=1, connections in flight finish, a broken drop-in
# leaves the running configuration in place and is reported with file:line, removed vhosts fall back.

import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

BIG_SIZE = 8 << 20


def setup():
    tree = h.Tree()
    tree.write_server_conf()
    tree.roots = {
        "a": h.make_tenant(tree, "a", h.UID_A),
        "b": h.make_tenant(tree, "b", h.UID_B),
        "c": h.make_tenant(tree, "c", h.UID_B),
    }
    tree.big = os.urandom(BIG_SIZE)
    tree.write(os.path.join(tree.roots["a"], "big.bin"), tree.big, h.UID_A)
    d = h.Daemon(tree)
    apply_dropins(d, "a", "b")
    return d.start()


DROPIN_FILES = {"a": ("10-a.conf", h.UID_A), "b": ("20-b.conf", h.UID_B), "c": ("30-c.conf", h.UID_B)}


def apply_dropins(d, *names):
    """Makes itk.d hold exactly the drop-ins of `names` (no Default = yes: the first one is the default)."""
    tree = d.tree
    for entry in os.listdir(tree.conf_dir):
        tree.remove_dropin(entry)
    # Written last to first, so that directory or creation order cannot pass for lexical order.
    for name in reversed(names):
        filename, uid = DROPIN_FILES[name]
        tree.write_vhost(filename, f"{name}.test", tree.roots[name], uid)


def expect_vhost(d, host, name, what):
    resp = h.fetch(d.port, "/", host)
    h.expect_status(resp, 200, f"{what}: GET / with Host: {host}")
    h.expect_body_contains(resp, f"vhost {name}", f"{what}: Host {host} must be served by {name}.test")


def expect_vhost_count(d, count, since):
    st = d.wait_status(lambda s: s["vhosts"] == count, timeout=5, since=since)
    h.check(st is not None, f"expected a STATUS with 'vhosts: {count}' after the reload, "
                            f"got {d.notify.statuses(since)}")


def new_vhost_served_after_reload(d):
    master = d.pid
    expect_vhost(d, "c.test", "a", "before the reload, c.test is unknown")
    apply_dropins(d, "a", "b", "c")
    mark = d.notify.mark()
    d.reload()
    expect_vhost(d, "c.test", "c", "after adding 30-c.conf and SIGHUP")
    expect_vhost(d, "b.test", "b", "after adding 30-c.conf and SIGHUP")
    h.expect_eq(d.pid, master, "master pid after the reload (reloaded in place)")
    h.check(d.running(), "expected itkd still running after the reload")
    expect_vhost_count(d, 3, mark)


def connection_in_flight_finishes(d):
    apply_dropins(d, "a", "b")
    with h.Conn(d.port, timeout=20, rcvbuf=32768) as c:
        c.request("GET", "/big.bin", "a.test", {"Connection": "close"})
        resp = c.read_head()
        h.expect_status(resp, 200, "GET /big.bin before the reload")
        h.expect_header(resp, "Content-Length", str(BIG_SIZE), "GET /big.bin")
        first = c.read_exact(256 << 10)
        d.reload()
        rest = c.read_exact(BIG_SIZE - len(first), timeout=30)
        got = first + rest
        h.check(hashlib.sha256(got).digest() == hashlib.sha256(d.tree.big).digest(),
                f"expected the {BIG_SIZE}-byte download started before SIGHUP to complete intact; "
                f"its content differs")


def broken_dropin_keeps_old_config(d):
    apply_dropins(d, "a", "b")
    d.reload()
    broken = d.tree.write_dropin("40-broken.conf", (
        "[vhost]\n"
        "ServerName = broken.test\n"
        "BogusKey = 1\n"
        f"DocumentRoot = {d.tree.roots['c']}\n"
        f"AssignUserID = #{h.UID_B} #{h.UID_B}\n"))
    mark = d.notify.mark()
    d.reload()
    _, msg = d.notify.wait_for(lambda m: "reload failed" in m.get("STATUS", ""), 5, mark)
    h.check(msg, f"expected a STATUS with 'reload failed' after SIGHUP with a broken drop-in, "
                 f"got {d.notify.statuses(mark)}")
    h.check(re.search(r"reload failed: \S*40-broken\.conf:3: ", msg["STATUS"]),
            f"expected the STATUS to say 'reload failed: FILE:LINE: ...' naming 40-broken.conf:3 (unknown key "
            f"on line 3), got {msg['STATUS']!r}")
    h.check("40-broken.conf:3" in d.log_text(),
            f"expected itkd's log to name 40-broken.conf:3, log tail: {d.log_tail(5)}")
    h.check(d.running(), f"expected itkd to keep running after a failed reload, exit status {d.proc.poll()}")
    expect_vhost(d, "a.test", "a", "after a failed reload")
    expect_vhost(d, "b.test", "b", "after a failed reload")
    expect_vhost(d, "broken.test", "a", "after a failed reload the broken vhost must not exist")
    os.unlink(broken)


def removed_vhost_falls_to_default(d):
    apply_dropins(d, "a", "b", "c")
    d.reload()
    expect_vhost(d, "b.test", "b", "before removing 20-b.conf")
    apply_dropins(d, "a", "c")
    mark = d.notify.mark()
    d.reload()
    expect_vhost(d, "b.test", "a", "after removing 20-b.conf, b.test falls to the first vhost")
    expect_vhost(d, "c.test", "c", "after removing 20-b.conf")
    expect_vhost_count(d, 2, mark)


def tenant_removes_its_document_root(d):
    # A tenant owns its DocumentRoot and may delete it: that must never stop a reload nor another vhost.
    apply_dropins(d, "a", "b", "c")
    d.reload()
    root_c = d.tree.roots["c"]
    moved = root_c + ".away"
    os.rename(root_c, moved)
    try:
        mark = d.notify.mark()
        log_mark = len(d.log_text())
        d.reload()
        _, msg = d.notify.wait_for(lambda m: "DocumentRoot unusable: c.test" in m.get("STATUS", ""), 5, mark)
        h.check(msg, f"expected STATUS to name c.test as 'DocumentRoot unusable' after the reload, got "
                     f"{d.notify.statuses(mark)}")
        h.check("reload failed" not in msg["STATUS"], f"the reload failed: {msg['STATUS']!r}")
        logged = d.log_text()[log_mark:]
        h.check(re.search(r"<4>master\[\d+\]: \S*30-c\.conf:1: DocumentRoot: `" + re.escape(root_c) +
                          r"` \(vhost c\.test\): No such file or directory", logged),
                f"expected a warning naming 30-c.conf:1, the path and c.test in the log, got: {logged[-800:]!r}")
        expect_vhost(d, "a.test", "a", "after c.test's DocumentRoot was removed and itkd reloaded")
        expect_vhost(d, "b.test", "b", "after c.test's DocumentRoot was removed and itkd reloaded")
        resp = h.fetch(d.port, "/", "c.test")
        h.expect_status(resp, 404, "GET / on c.test, whose DocumentRoot is gone")
        # The same configuration passes itkd --check, with the warning on stderr.
        code, out, err = h.run_itkd_direct(["--check", "--config", d.tree.conf, "--config-dir", d.tree.conf_dir])
        h.expect_eq(code, 0, f"itkd --check with c.test's DocumentRoot gone (stderr: {err!r})")
        h.check("warning:" in err and "vhost c.test" in err, f"expected --check to warn about c.test, got {err!r}")
    finally:
        os.rename(moved, root_c)
    # Back without a reload: the next request opens it again.
    expect_vhost(d, "c.test", "c", "once c.test's DocumentRoot is back")


def start_with_a_missing_document_root(d):
    tree = h.Tree()
    tree.write_server_conf()
    root_a = h.make_tenant(tree, "a", h.UID_A)
    tree.write_vhost("10-a.conf", "a.test", root_a, h.UID_A)
    tree.write_vhost("20-gone.conf", "gone.test", os.path.join(tree.dir, "never-made"), h.UID_B)
    other = h.Daemon(tree, name="itkd-missing")
    other.start()
    expect_vhost(other, "a.test", "a", "a.test next to a vhost whose DocumentRoot never existed")
    h.expect_status(h.fetch(other.port, "/", "gone.test"), 404, "GET / on gone.test")
    st = other.notify.wait_for(lambda m: "DocumentRoot unusable: gone.test" in m.get("STATUS", ""), 5)[1]
    h.check(st, f"expected STATUS to name gone.test, got {other.notify.statuses()}")


SCENARIOS = [
    new_vhost_served_after_reload,
    connection_in_flight_finishes,
    broken_dropin_keeps_old_config,
    removed_vhost_falls_to_default,
    tenant_removes_its_document_root,
    start_with_a_missing_document_root,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)
