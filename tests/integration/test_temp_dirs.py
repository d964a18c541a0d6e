# Each vhost's private temporary directory: TMPDIR of its scripts, PHP's uploads, sessions and temporary
# files; 0700 for its own uid, so that no tenant sees or plants another's temporary files (the shared /tmp
# symlink-race and session-fixation class); removed with everything in it when the vhost goes or changes uid.

import functools
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PHP_CGI = "/usr/bin/php-cgi"
UID_C = 2013  # c.test's uid after the reload that changes it

# TMPDIR, its owner and mode, a file written there, and what this tenant can do to another's directory
# (its path in the query string).
TMP_CGI = r"""#!/bin/sh
printf 'Content-Type: text/plain\n\n'
echo "tmpdir=$TMPDIR"
echo "owner=$(stat -c '%u %a' "$TMPDIR")"
echo "mine=$(echo "of $(id -u)" > "$TMPDIR/mine" && cat "$TMPDIR/mine")"
other=$(printf '%s' "$QUERY_STRING" | sed 's/^other=//')
if ls "$other" >/dev/null 2>&1; then echo "list=yes"; else echo "list=no"; fi
if touch "$other/planted" 2>/dev/null; then echo "plant=yes"; else echo "plant=no"; fi
if cat "$other/mine" >/dev/null 2>&1; then echo "read=yes"; else echo "read=no"; fi
"""

# What PHP was told, and where a session and an upload land.
PHP_TMP = r"""<?php
session_start();
$_SESSION['x'] = 1;
echo 'sys_temp_dir=', sys_get_temp_dir(), "\n";
echo 'upload_tmp_dir=', ini_get('upload_tmp_dir'), "\n";
echo 'session_save_path=', session_save_path(), "\n";
echo 'session_file=', session_save_path() . '/sess_' . session_id(), "\n";
foreach ($_FILES as $f) echo 'upload=', $f['tmp_name'], "\n";
"""


def setup():
    tree = h.Tree(prefix="itk-tmp-")
    tree.write_server_conf()
    roots = {}
    for name, uid in (("a", h.UID_A), ("b", h.UID_B), ("c", h.UID_B)):
        roots[name] = h.make_tenant(tree, name, uid)
        tree.write(os.path.join(roots[name], "tmp.cgi"), TMP_CGI, uid, mode=0o755)
        tree.write(os.path.join(roots[name], "tmp.php"), PHP_TMP, uid)
    lines = ["CGI = .cgi"]
    if os.access(PHP_CGI, os.X_OK):
        tree.write(os.path.join(roots["b"], "tmp.fphp"), PHP_TMP, h.UID_B)
    php = {"a": [f"Handler = .php {PHP_CGI}"], "b": [f"Handler = .php {PHP_CGI}", f"FastCGI = .fphp {PHP_CGI}"],
           "c": []} if os.access(PHP_CGI, os.X_OK) else {"a": [], "b": [], "c": []}
    for name, uid, filename in (("a", h.UID_A, "10-a.conf"), ("b", h.UID_B, "20-b.conf"), ("c", h.UID_B, "30-c.conf")):
        tree.write_dropin(filename, "\n".join(["[vhost]", f"ServerName = {name}.test", f"DocumentRoot = {roots[name]}",
                                               f"AssignUserID = #{uid} #{uid}", *lines, *php[name]]) + "\n")
    d = h.Daemon(tree)
    d.roots = roots
    return d.start()


def requires_php(fn):
    @functools.wraps(fn)
    def wrapper(d):
        if not os.access(PHP_CGI, os.X_OK):
            raise h.Skip(f"{PHP_CGI} not installed (Debian package php-cgi)")
        return fn(d)
    return wrapper


def get_kv(d, host, path, what, **kw):
    resp = h.fetch(d.port, path, host, **kw)
    h.expect_status(resp, 200, f"{what}: {kw.get('method', 'GET')} {path} on {host}")
    return h.key_values(resp.body)


def each_vhost_has_a_private_temp_dir(d):
    a_dir, b_dir = d.temp_dir("a.test"), d.temp_dir("b.test")
    a = get_kv(d, "a.test", f"/tmp.cgi?other={b_dir}", "a.test's CGI")
    b = get_kv(d, "b.test", f"/tmp.cgi?other={a_dir}", "b.test's CGI")
    h.expect_eq(a.get("tmpdir"), a_dir, "TMPDIR of a.test's CGI")
    h.expect_eq(b.get("tmpdir"), b_dir, "TMPDIR of b.test's CGI")
    h.expect_eq(a.get("owner"), f"{h.UID_A} 700", "owner and mode of a.test's temporary directory")
    h.expect_eq(b.get("owner"), f"{h.UID_B} 700", "owner and mode of b.test's temporary directory")
    h.expect_eq(a.get("mine"), f"of {h.UID_A}", "a file a.test's CGI wrote in its TMPDIR")
    for who, kv, other in (("a.test", a, "b.test"), ("b.test", b, "a.test")):
        h.expect_eq((kv.get("list"), kv.get("plant"), kv.get("read")), ("no", "no", "no"),
                    f"{who}'s CGI listing, creating a file in, and reading a file of {other}'s temporary directory")
    # The directories above: root's, and nobody but root may list or write them.
    base = os.path.dirname(a_dir)
    st = os.stat(base)
    h.expect_eq((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o711), f"owner and mode of {base}")
    # c.test has the same uid as b.test, yet its own directory.
    c = get_kv(d, "c.test", f"/tmp.cgi?other={b_dir}", "c.test's CGI")
    h.expect_eq(c.get("tmpdir"), d.temp_dir("c.test"), "TMPDIR of c.test's CGI (b.test's uid, another vhost)")


@requires_php
def php_uses_the_vhost_temp_dir(d):
    for host, path, how in (("a.test", "/tmp.php", "Handler"), ("b.test", "/tmp.fphp", "FastCGI")):
        want = d.temp_dir(host)
        boundary = "itkboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n"
                f"Content-Type: text/plain\r\n\r\nuploaded\r\n--{boundary}--\r\n").encode()
        kv = get_kv(d, host, path, f"PHP through {how}", method="POST", body=body,
                    headers=[("Content-Type", f"multipart/form-data; boundary={boundary}"),
                             ("Content-Length", str(len(body)))])
        for key in ("sys_temp_dir", "upload_tmp_dir", "session_save_path"):
            h.expect_eq(kv.get(key), want, f"{key} of PHP on {host} ({how})")
        h.check(kv.get("upload", "").startswith(want + "/"), f"upload on {host} ({how}): expected a file in {want}, "
                                                             f"got {kv.get('upload')!r}")
        session = kv.get("session_file", "")
        h.check(os.path.exists(session), f"session file {session!r} of PHP on {host} ({how}) does not exist")
        h.expect_eq(os.stat(session).st_uid, h.UID_A if host == "a.test" else h.UID_B, f"owner of {session}")


def temp_dir_removed_with_its_vhost(d):
    c_dir = d.temp_dir("c.test")
    get_kv(d, "c.test", "/tmp.cgi", "c.test's CGI writes a file in its TMPDIR")
    h.check(os.path.exists(os.path.join(c_dir, "mine")), f"setup: expected {c_dir}/mine")
    # Another uid for the same vhost: what the old one left must not be handed to the new one.
    text = open(os.path.join(d.tree.conf_dir, "30-c.conf")).read()
    d.tree.write_dropin("30-c.conf", text.replace(f"#{h.UID_B} #{h.UID_B}", f"#{UID_C} #{UID_C}"))
    os.chown(d.roots["c"], UID_C, UID_C)
    os.chown(os.path.join(d.roots["c"], "tmp.cgi"), UID_C, UID_C)
    os.chown(os.path.join(d.roots["c"], "index.html"), UID_C, UID_C)
    d.reload()
    st = os.stat(c_dir)
    h.expect_eq((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (UID_C, UID_C, 0o700),
                "c.test's temporary directory after its uid changed")
    h.check(not os.path.exists(os.path.join(c_dir, "mine")), "a file of c.test's old uid is still in its new "
                                                             "temporary directory")
    kv = get_kv(d, "c.test", "/tmp.cgi", "c.test's CGI under its new uid")
    h.expect_eq(kv.get("mine"), f"of {UID_C}", "a file c.test's CGI wrote under its new uid")
    # The vhost removed: its directory goes, with everything in it, files and subdirectories.
    os.makedirs(os.path.join(c_dir, "deep", "er"))
    os.symlink("/etc", os.path.join(c_dir, "deep", "etc-link"))
    d.tree.remove_dropin("30-c.conf")
    d.reload()
    gone = h.wait_until(lambda: not os.path.exists(c_dir), 5)
    h.check(gone, f"expected {c_dir} removed within 5s of the reload that removed c.test, "
                  f"it holds {os.listdir(c_dir) if os.path.exists(c_dir) else None}")
    h.check(os.path.isdir("/etc") and os.path.exists("/etc/passwd"), "the removal followed a symbolic link")
    leftovers = [n for n in os.listdir(os.path.dirname(c_dir)) if n.startswith(".gone-")]
    h.check(h.wait_until(lambda: not [n for n in os.listdir(os.path.dirname(c_dir)) if n.startswith(".gone-")], 5),
            f"expected the removed directories cleaned up, found {leftovers}")
    h.check(os.path.isdir(d.temp_dir("a.test")), "a.test's temporary directory went too")


SCENARIOS = [
    each_vhost_has_a_private_temp_dir,
    php_uses_the_vhost_temp_dir,
    temp_dir_removed_with_its_vhost,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)
