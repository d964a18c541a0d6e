# Tenant isolation: private files readable only through their own vhost, symlinks and hard links
# across tenants or out of the docroot refused, and the credentials of acceptors and workers.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

A_SECRET = "A-secret-of-2001\n"
B_SECRET = "B-secret-of-2002\n"
ROOT_SECRET = "ROOT-ONLY-secret\n"
OUTSIDE = "OUTSIDE-the-docroots\n"


def setup():
    tree = h.two_tenant_tree(a_keys={"NiceValue": 5})
    ra, rb = tree.root_a, tree.root_b
    a_secret = tree.write(os.path.join(ra, "secret.txt"), A_SECRET, h.UID_A, mode=0o600)
    b_secret = tree.write(os.path.join(rb, "secret.txt"), B_SECRET, h.UID_B, mode=0o600)
    tree.write(os.path.join(ra, "root-only.txt"), ROOT_SECRET, 0, mode=0o600)
    tree.write(tree.path("outside.txt"), OUTSIDE, 0, mode=0o644)
    tree.symlink("/etc/passwd", os.path.join(ra, "passwd-link"), h.UID_A)
    tree.symlink("../../outside.txt", os.path.join(ra, "outside-link"), h.UID_A)
    # What a tenant could plant in its own root to reach the other's private file.
    tree.symlink(a_secret, os.path.join(rb, "a-secret-abs"), h.UID_B)
    tree.symlink("../a/secret.txt", os.path.join(rb, "a-secret-rel"), h.UID_B)
    tree.symlink(b_secret, os.path.join(ra, "b-secret-abs"), h.UID_A)
    # A hard link is not a path escape: only the worker's uid can refuse it.
    os.link(a_secret, os.path.join(rb, "a-secret-hardlink"))
    os.link(b_secret, os.path.join(ra, "b-secret-hardlink"))
    return h.Daemon(tree).start()


def expect_refused(d, host, path, secret, what):
    resp = h.fetch(d.port, path, host)
    h.expect_status(resp, 403, f"{what}: GET {path} on {host}")
    h.check(secret.strip().encode() not in resp.body, f"{what}: the protected content leaked\n{resp.describe()}")


def own_private_file_is_served(d):
    for host, body in (("a.test", A_SECRET), ("b.test", B_SECRET)):
        resp = h.fetch(d.port, "/secret.txt", host)
        h.expect_status(resp, 200, f"GET /secret.txt (0600, owned by the vhost's uid) on {host}")
        h.expect_eq(resp.body, body.encode(), f"body of /secret.txt on {host}")


def other_tenants_file_refused_through_symlink(d):
    expect_refused(d, "b.test", "/a-secret-abs", A_SECRET, "absolute symlink to A's 0600 file in B's root")
    expect_refused(d, "b.test", "/a-secret-rel", A_SECRET, "relative symlink to A's 0600 file in B's root")
    expect_refused(d, "a.test", "/b-secret-abs", B_SECRET, "absolute symlink to B's 0600 file in A's root")


def other_tenants_file_refused_through_hard_link(d):
    expect_refused(d, "b.test", "/a-secret-hardlink", A_SECRET, "hard link to A's 0600 file in B's root")
    expect_refused(d, "a.test", "/b-secret-hardlink", B_SECRET, "hard link to B's 0600 file in A's root")


def root_owned_private_file_refused(d):
    expect_refused(d, "a.test", "/root-only.txt", ROOT_SECRET, "root-owned 0600 file in A's root")


def symlinks_out_of_docroot_refused(d):
    resp = h.fetch(d.port, "/passwd-link", "a.test")
    h.expect_status(resp, 403, "symlink to /etc/passwd")
    h.check(b"root:" not in resp.body, f"symlink to /etc/passwd: /etc/passwd leaked\n{resp.describe()}")
    expect_refused(d, "a.test", "/outside-link", OUTSIDE, "symlink ../../outside.txt (world-readable)")


def acceptor_credentials(d):
    acceptors = h.wait_until(d.acceptors, 5)
    h.check(acceptors, "expected at least one itk-acceptor child of the master, found none")
    for pid in acceptors:
        st = h.proc_status(pid)
        if st is None:
            continue
        problems = []
        if h.ids(st["Uid"])[:3] != [h.NOBODY_UID] * 3:
            problems.append(f"real/effective/saved uid: expected {[h.NOBODY_UID] * 3} (User = nobody), "
                            f"got {h.ids(st['Uid'])[:3]}")
        gids = h.ids(st["Gid"])[:3] + h.ids(st.get("Groups", ""))
        if 0 in gids:
            problems.append(f"gid/groups: expected no root group, got Gid {st['Gid']} Groups {st.get('Groups')}")
        for cap in ("CapEff", "CapPrm"):
            extra = int(st[cap], 16) & ~h.ACCEPTOR_CAPS
            if extra:
                problems.append(f"{cap}: expected at most CAP_SETUID, CAP_SETGID, CAP_SYS_NICE "
                                f"({h.ACCEPTOR_CAPS:016x}), got {st[cap]} (extra bits {extra:x})")
        if problems:
            raise h.Fail(f"acceptor {pid}:\n" + "\n".join(problems))


def check_worker_of(d, host, uid, nice=None):
    with h.Conn(d.port) as c:
        c.request("GET", "/", host)
        resp = c.read_response()
        h.expect_status(resp, 200, f"keep-alive GET / on {host}")
        pid = d.worker_for(c)
        h.check(pid, f"expected an itk-worker holding the connection to {host}; "
                     f"workers now: {d.workers()}")
        h.check_worker_credentials(pid, uid, nice)
        parent = h.ppid_of(pid)
        h.check((h.comm_of(parent) == "itk-spawner" and h.ppid_of(parent) == d.pid) or parent == d.pid,
                f"worker {pid}: expected its parent to be the itk-spawner or the master {d.pid}, "
                f"got {parent} ({h.comm_of(parent)})")


def worker_credentials_vhost_a(d):
    check_worker_of(d, "a.test", h.UID_A, nice=5)


def worker_credentials_vhost_b(d):
    check_worker_of(d, "b.test", h.UID_B)


SCENARIOS = [
    own_private_file_is_served,
    other_tenants_file_refused_through_symlink,
    other_tenants_file_refused_through_hard_link,
    root_owned_private_file_refused,
    symlinks_out_of_docroot_refused,
    acceptor_credentials,
    worker_credentials_vhost_a,
    worker_credentials_vhost_b,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)
