# Atomic deploys (Capistrano/Deployer layout): DocumentRoot = <site>/current, current -> releases/N,
# releases/N/uploads -> ../../shared/uploads. The tenant's switch of `current` is served from the next
# connection without a reload; SymlinkRoot = <site> lets the shared link work while nothing beyond <site>
# (another tenant's tree, /etc) is ever opened; without it, behaviour is as before (the release is the root).

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SECRET = "B-secret-of-2002"

ENV_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\n\\n'
echo "document_root=$DOCUMENT_ROOT"
echo "script_filename=$SCRIPT_FILENAME"
echo "release=$(cat "$DOCUMENT_ROOT/index.html")"
"""


def own(path, uid):
    os.lchown(path, uid, uid)


def make_site(tree, name, uid, other_root):
    """<www>/<name>/{releases/1,releases/2,shared/uploads}, current -> releases/1; returns the site path."""
    site = os.path.join(tree.www, name)
    for d in ("", "releases", "shared", "shared/uploads", "releases/1", "releases/2"):
        os.makedirs(os.path.join(site, d), exist_ok=True)
        own(os.path.join(site, d), uid)
        os.chmod(os.path.join(site, d), 0o755)
    tree.write(os.path.join(site, "shared", "uploads", "pic.txt"), "shared upload\n", uid)
    for n in ("1", "2"):
        rel = os.path.join(site, "releases", n)
        tree.write(os.path.join(rel, "index.html"), f"release {n}\n", uid)
        tree.write(os.path.join(rel, "env.cgi"), ENV_CGI, uid, mode=0o755)
        tree.symlink("../../shared/uploads", os.path.join(rel, "uploads"), uid)
        tree.symlink("/etc", os.path.join(rel, "etc"), uid)
        tree.symlink(os.path.relpath(other_root, rel), os.path.join(rel, "other"), uid)
        tree.symlink("../../../" + os.path.basename(other_root), os.path.join(rel, "other2"), uid)
    tree.symlink("releases/1", os.path.join(site, "current"), uid)
    return site


def switch(site, target, uid):
    """What `ln -sfn releases/2 current` in a deploy tool does: a new link renamed over the old one."""
    tmp = os.path.join(site, "current.new")
    os.symlink(target, tmp)
    own(tmp, uid)
    os.rename(tmp, os.path.join(site, "current"))


def setup():
    tree = h.Tree(prefix="itk-deploy-")
    tree.write_server_conf()
    other = h.make_tenant(tree, "other", h.UID_B, files={"secret.txt": SECRET + "\n"})
    d = h.Daemon(tree)
    d.sites = {}
    for name, symlink_root in (("dep", True), ("flat", False)):
        site = make_site(tree, name, h.UID_A, other)
        d.sites[name] = site
        keys = {"CGI": ".cgi"}
        if symlink_root:
            keys["SymlinkRoot"] = site
        tree.write_vhost(f"{name}.conf", f"{name}.test", os.path.join(site, "current"), h.UID_A, **keys)
    tree.write_vhost("other.conf", "other.test", other, h.UID_B)
    return d.start()


def body_of(d, host, path, status=200):
    resp = h.fetch(d.port, path, host)
    h.expect_status(resp, status, f"GET {path} on {host}")
    return resp.body.decode("utf-8", "replace")


def release_switch_is_served_on_the_next_connection(d):
    for name in ("dep", "flat"):
        site, host = d.sites[name], f"{name}.test"
        switch(site, "releases/1", h.UID_A)
        h.expect_eq(body_of(d, host, "/"), "release 1\n", f"{host} before the deploy")
        with h.Conn(d.port) as kept:
            kept.request("GET", "/", host)
            resp = kept.read_response()
            h.expect_status(resp, 200, f"{host}: first request of a kept-alive connection")
            h.expect_eq(resp.body, b"release 1\n", f"{host}: first request of a kept-alive connection")
            switch(site, "releases/2", h.UID_A)
            # Several new connections, so that every spare worker of the vhost is seen to follow the link.
            for k in range(4):
                h.expect_eq(body_of(d, host, "/"), "release 2\n", f"{host}: new connection {k + 1} after the switch")
            kept.request("GET", "/", host)
            resp = kept.read_response()
            h.expect_status(resp, 200, f"{host}: kept-alive connection after the switch")
            h.check(resp.body in (b"release 1\n", b"release 2\n"), f"{host}: kept-alive connection: {resp.body!r}")
        switch(site, "releases/1", h.UID_A)
        h.expect_eq(body_of(d, host, "/"), "release 1\n", f"{host} after switching back")


def scripts_get_the_real_release_path(d):
    site = d.sites["dep"]
    switch(site, "releases/2", h.UID_A)
    try:
        kv = h.key_values(body_of(d, "dep.test", "/env.cgi").encode())
        real = os.path.realpath(os.path.join(site, "releases", "2"))
        h.expect_eq(kv.get("document_root"), real, "DOCUMENT_ROOT of a script")
        h.expect_eq(kv.get("script_filename"), real + "/env.cgi", "SCRIPT_FILENAME of a script")
        h.expect_eq(kv.get("release"), "release 2", "what the script read from DOCUMENT_ROOT")
    finally:
        switch(site, "releases/1", h.UID_A)


def shared_uploads_work_with_symlink_root_only(d):
    h.expect_eq(body_of(d, "dep.test", "/uploads/pic.txt"), "shared upload\n", "dep.test (SymlinkRoot) shared upload")
    resp = h.fetch(d.port, "/uploads/pic.txt", "flat.test")
    h.expect_status(resp, (403, 404), "flat.test (no SymlinkRoot): /uploads leads out of the release")
    h.check(b"shared upload" not in resp.body, "flat.test served the shared upload")


def links_out_of_symlink_root_are_refused(d):
    for host in ("dep.test", "flat.test"):
        for path in ("/etc/hostname", "/etc/passwd", "/other/secret.txt", "/other2/secret.txt"):
            resp = h.fetch(d.port, path, host)
            h.expect_status(resp, (403, 404), f"{path} on {host}")
            h.check(SECRET.encode() not in resp.body and b"root:" not in resp.body, f"{path} on {host} leaked")
    h.expect_eq(body_of(d, "other.test", "/secret.txt"), SECRET + "\n", "other.test serves its own file")


def current_pointing_out_of_symlink_root_is_refused(d):
    site = d.sites["dep"]
    other = os.path.join(d.tree.www, "other")
    switch(site, "../other", h.UID_A)
    try:
        for _ in range(3):
            resp = h.fetch(d.port, "/secret.txt", "dep.test")
            h.expect_status(resp, 403, "dep.test while its current leads to another tenant's tree")
            h.check(SECRET.encode() not in resp.body, "dep.test served another tenant's file")
        h.expect_eq(body_of(d, "other.test", "/secret.txt"), SECRET + "\n", "other.test meanwhile")
    finally:
        switch(site, "releases/1", h.UID_A)
    h.expect_eq(body_of(d, "dep.test", "/"), "release 1\n", "dep.test once current is back")
    h.check(os.path.isdir(other), "other tree still there")


def symlink_root_must_contain_the_document_root(d):
    tree = h.Tree(prefix="itk-deploy-bad-")
    tree.write_server_conf()
    root = h.make_tenant(tree, "x", h.UID_A)
    tree.write_dropin("x.conf", "\n".join([
        "[vhost]", "ServerName = x.test", f"DocumentRoot = {root}", f"AssignUserID = #{h.UID_A} #{h.UID_A}",
        f"SymlinkRoot = {root}-elsewhere",  # 5
    ]) + "\n")
    tree.write_dropin("y.conf", "\n".join([
        "[vhost]", "ServerName = y.test", f"DocumentRoot = {root}", f"AssignUserID = #{h.UID_A} #{h.UID_A}",
        "SymlinkRoot = /",  # 5
    ]) + "\n")
    rc, _, err = h.run_itkd_direct(["--check", "--config", tree.conf, "--config-dir", tree.conf_dir])
    h.expect_eq(rc, 1, f"itkd --check exit status (stderr: {err})")
    for f in ("x.conf", "y.conf"):
        where = f"{os.path.join(tree.conf_dir, f)}:5: SymlinkRoot: "
        h.check(where in err, f"expected an error at {where}, got:\n{err}")


SCENARIOS = [
    release_switch_is_served_on_the_next_connection,
    scripts_get_the_real_release_path,
    shared_uploads_work_with_symlink_root_only,
    links_out_of_symlink_root_are_refused,
    current_pointing_out_of_symlink_root_is_refused,
    symlink_root_must_contain_the_document_root,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)
