# Access rules through itkd: dotfiles, Deny prefixes and the deny lines of .htaccess files (read by the
# worker as the tenant), against the encodings a hostile client tries, for static files and CGI scripts.

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

WIKI_PAGE = "WIKI-PAGE-private-text"
WIKI_CONF = "WIKI-CONF-password"
LOG_LINE = "LOG-private-line"
PRIVATE = "PRIVATE-by-Deny"
DOT = "DOT-secret-value"

DOKU_DATA_HTACCESS = """## no access to the data directory
<IfModule mod_authz_core.c>
  Require all denied
</IfModule>
<IfModule !mod_authz_core.c>
  Order allow,deny
  Deny from all
</IfModule>
"""


def marker_script(markers, name):
    return ("#!/bin/sh\n"
            f"touch {markers}/{name}\n"
            "printf 'Content-Type: text/plain\\n\\nran\\n'\n")


def setup():
    tree = h.two_tenant_tree(a_keys={"CGI": ".cgi", "Deny": "/private /inc/lib"},
                             b_keys={"DenyDotFiles": "no"})
    ra = tree.root_a
    markers = tree.path("markers")
    os.mkdir(markers, 0o755)
    os.chown(markers, h.UID_A, h.UID_A)
    tree.markers = markers

    def put(rel, content, mode=0o644):
        return tree.write(os.path.join(ra, rel), content, h.UID_A, mode=mode)

    put(".htaccess", "RewriteEngine On\nRewriteRule ^x$ /doku.php [L]\n")
    put(".user.ini", f"; {DOT}\n")
    put(".env", f"DB_PASSWORD={DOT}\n")
    put(".git/config", f"[core]\n# {DOT}\n")
    put(".well-known/acme-challenge/token", "acme-token-body\n")
    # A DokuWiki-like tree, with the files it ships.
    put("doku.php", "doku-main\n")
    put("lib/tpl/style.css", "body{}\n")
    put("data/.htaccess", DOKU_DATA_HTACCESS)
    put("data/pages/start.txt", WIKI_PAGE + "\n")
    put("data/pages/.htaccess", "Require all granted\n")  # a subdirectory's grant does not reopen
    put("conf/.htaccess", "Require all denied\n")
    put("conf/local.php", WIKI_CONF + "\n")
    put("conf/index.html", WIKI_CONF + "\n")
    put("logs/.htaccess", '<FilesMatch "\\.(log|txt)$">\n  Require all denied\n</FilesMatch>\n')
    put("logs/app.log", LOG_LINE + "\n")
    put("logs/app.txt", LOG_LINE + "\n")
    put("logs/readme.html", "readme\n")
    put("private/a.html", PRIVATE + "\n")
    put("inc/lib/x.html", PRIVATE + "\n")
    put("inc/other.html", "other\n")
    put("edit/a.html", "editable\n")
    put("locked/.htaccess", "RewriteEngine On\n", mode=0o000)
    put("locked/a.html", "locked\n")
    # Scripts that would leave a marker if they ran.
    put("ok.cgi", marker_script(markers, "ok"), mode=0o755)
    put("private/run.cgi", marker_script(markers, "private"), mode=0o755)
    put("conf/run.cgi", marker_script(markers, "conf"), mode=0o755)
    put("data/pages/run.cgi", marker_script(markers, "data"), mode=0o755)
    put("scripts/.htaccess", '<Files "secret.cgi">\n  Deny from all\n</Files>\n')
    put("scripts/secret.cgi", marker_script(markers, "files"), mode=0o755)
    put("scripts/open.cgi", marker_script(markers, "open"), mode=0o755)
    put("grant/.htaccess", "Require all granted\n")
    put("grant/a.html", "granted\n")
    put(".hidden/run.cgi", marker_script(markers, "hidden"), mode=0o755)
    # Links inside the tree into what is refused.
    put("public/index.html", "public\n")
    tree.symlink("../data/pages/start.txt", os.path.join(ra, "public/start.html"), h.UID_A)
    tree.symlink("../data/pages", os.path.join(ra, "public/pages"), h.UID_A)
    tree.symlink("../logs/app.log", os.path.join(ra, "public/app.html"), h.UID_A)
    tree.symlink("../.git/config", os.path.join(ra, "public/git.html"), h.UID_A)
    tree.symlink("../private/run.cgi", os.path.join(ra, "public/run.cgi"), h.UID_A)
    os.makedirs(os.path.join(ra, "idx"))
    os.chown(os.path.join(ra, "idx"), h.UID_A, h.UID_A)
    tree.symlink("../private/a.html", os.path.join(ra, "idx/index.html"), h.UID_A)

    tree.write(os.path.join(tree.root_b, ".env"), "b-env-served\n", h.UID_B)
    tree.write(os.path.join(tree.root_b, ".htaccess"), "# b-htaccess\n", h.UID_B)
    tree.write(os.path.join(tree.root_b, ".htpasswd"), "u:x\n", h.UID_B)
    d = h.Daemon(tree).start()
    d.root_a = ra
    return d


def expect(d, path, status, what, secret=None, host="a.test", method="GET", body=b""):
    resp = h.fetch(d.port, path, host, method=method, body=body,
                   headers={"Content-Length": str(len(body))} if body else ())
    h.expect_status(resp, status, f"{what}: {method} {path} on {host}")
    if secret is not None:
        h.check(secret.encode() not in resp.body, f"{what}: the protected content leaked\n{resp.describe()}")
    return resp


def dotfiles_refused_by_default(d):
    for path in ("/.htaccess", "/.user.ini", "/.env", "/.git/config", "/.git/", "/.git"):
        expect(d, path, 403, "a dotfile or dot-directory", DOT)
    expect(d, "/.htaccess", 403, "HEAD of the root .htaccess", method="HEAD")


def well_known_is_served(d):
    resp = expect(d, "/.well-known/acme-challenge/token", 200, "ACME http-01 token")
    h.expect_eq(resp.body, b"acme-token-body\n", "the token's body")


def dotfiles_served_when_switched_off(d):
    resp = expect(d, "/.env", 200, "DenyDotFiles = no", host="b.test")
    h.expect_eq(resp.body, b"b-env-served\n", "b.test's .env")
    expect(d, "/.htaccess", 403, ".ht* files even with DenyDotFiles = no", "b-htaccess", host="b.test")
    expect(d, "/%2ehtpasswd", 403, ".ht* files even with DenyDotFiles = no", host="b.test")


def dokuwiki_tree(d):
    expect(d, "/data/pages/start.txt", 403, "data/ (IfModule pair in data/.htaccess)", WIKI_PAGE)
    expect(d, "/data/pages/", 403, "the data/pages directory", WIKI_PAGE)
    expect(d, "/data", 403, "the data directory, without redirect")
    expect(d, "/conf/local.php", 403, "conf/ (Require all denied)", WIKI_CONF)
    expect(d, "/conf/", 403, "conf/'s DirectoryIndex", WIKI_CONF)
    resp = expect(d, "/doku.php", 200, "the wiki's entry point")
    h.expect_eq(resp.body, b"doku-main\n", "doku.php")
    expect(d, "/lib/tpl/style.css", 200, "a stylesheet")


def subdirectory_grant_does_not_reopen(d):
    # data/pages/.htaccess says `Require all granted`: itk applies no grant from .htaccess.
    expect(d, "/data/pages/start.txt", 403, "parent denies, subdirectory grants", WIKI_PAGE)


def files_match_denies_matching_names(d):
    expect(d, "/logs/app.log", 403, "FilesMatch \\.(log|txt)$", LOG_LINE)
    expect(d, "/logs/app.txt", 403, "FilesMatch \\.(log|txt)$", LOG_LINE)
    expect(d, "/logs/readme.html", 200, "a name FilesMatch does not match")


def deny_prefixes(d):
    expect(d, "/private/a.html", 403, "Deny = /private", PRIVATE)
    expect(d, "/private/", 403, "Deny = /private, its directory")
    expect(d, "/private", 403, "Deny = /private, without the slash")
    expect(d, "/inc/lib/x.html", 403, "Deny = /inc/lib", PRIVATE)
    expect(d, "/inc/other.html", 200, "beside a Deny prefix")
    expect(d, "/privateer", 404, "a name that only starts like a Deny prefix")


def hostile_encodings(d):
    # (target, exact status): 403 where the target names the refused file, 400 where it cannot be decoded
    # safely, 404 where the kernel finds no such name (Linux does not trim dots or spaces, nor read ';').
    cases = [
        ("/%2egit/config", 403), ("/%2Egit/config", 403), ("/%2e%65nv", 403), ("/.git%2fconfig", 400),
        ("/data%2Fpages/start.txt", 400), ("/data%2fpages%2fstart.txt", 400),
        ("//data//pages//start.txt", 403), ("/./data/./pages/./start.txt", 403),
        ("/x/../data/pages/start.txt", 400), ("/lib/%2e%2e/data/pages/start.txt", 400),
        ("/%64ata/pages/start.txt", 403), ("/data/pages/start.txt/foo", 403), ("/data/pages/start.txt;v=1", 403),
        ("/data/pages/start.txt?x=1", 403), ("/data./pages/start.txt", 404), ("/data%20/pages/start.txt", 404),
        ("/data/pages/start.txt.", 403), ("/data/pages/start.txt%20", 403), ("/data;x/pages/start.txt", 404),
        ("/DATA/pages/start.txt", 404), ("/conf/local.php.", 403), ("/conf/local.php%00", 400),
        ("/conf%2flocal.php", 400), ("//conf/local.php", 403), ("/conf/./local.php", 403),
        ("/private%2Fa.html", 400), ("/%70rivate/a.html", 403), ("//private/a.html", 403),
        ("/private/a.html/x", 403), ("/logs/app%2elog", 403), ("/logs//app.log", 403),
        ("/.git./config", 403), ("/.env%20", 403), ("/%2ehtaccess", 403), ("/.well-known/../.env", 400),
    ]
    wrong = []
    for target, status in cases:
        resp = h.fetch(d.port, target, "a.test")
        leaked = any(s.encode() in resp.body for s in (WIKI_PAGE, WIKI_CONF, LOG_LINE, PRIVATE, DOT))
        if resp.status != status or leaked:
            wrong.append(f"{target}: {resp.status}{' with the secret' if leaked else ''} (expected {status})")
    h.check(not wrong, "hostile targets answered wrongly:\n  " + "\n  ".join(wrong))


def symlinks_into_refused_places(d):
    expect(d, "/public/index.html", 200, "the control: a plain file beside the links")
    expect(d, "/public/start.html", 403, "a link to a file in data/", WIKI_PAGE)
    expect(d, "/public/pages/start.txt", 403, "a link to the data/pages directory", WIKI_PAGE)
    expect(d, "/public/app.html", 403, "a link to a file FilesMatch denies", LOG_LINE)
    expect(d, "/public/git.html", 403, "a link to .git/config", DOT)
    expect(d, "/idx/", 403, "a DirectoryIndex that links under a Deny prefix", PRIVATE)


def scripts_in_refused_places_never_run(d):
    markers = d.tree.markers
    resp = expect(d, "/ok.cgi", 200, "the control script")
    h.expect_eq(resp.body, b"ran\n", "the control script's output")
    h.check(os.path.exists(os.path.join(markers, "ok")), "the control script left no marker")
    resp = expect(d, "/scripts/open.cgi/x", 200, "a script beside one that <Files> denies")
    for path in ("/private/run.cgi", "/conf/run.cgi", "/data/pages/run.cgi", "/scripts/secret.cgi",
                 "/scripts/secret.cgi/path/info", "/.hidden/run.cgi", "/%2ehidden/run.cgi/x", "/public/run.cgi",
                 "//private/run.cgi?x=1", "/%63onf/run.cgi"):
        expect(d, path, 403, "a script where access is refused")
        expect(d, path, 403, "the same with a body", method="POST", body=b"a=1")
    time.sleep(0.2)
    h.expect_eq(sorted(os.listdir(markers)), ["ok", "open"], "markers of the scripts that ran")


def edited_htaccess_applies_without_reload(d):
    # A worker looks at a directory and its .htaccess again once what it saw is a second old
    # (docs/configuration.md, .htaccess): each change is asked for after that.
    settle = 1.2
    path = os.path.join(d.root_a, "edit", ".htaccess")
    expect(d, "/edit/a.html", 200, "before any .htaccess")
    d.tree.write(path, "Require all denied\n", h.UID_A)
    time.sleep(settle)
    # Every worker that may take the next request has its own cache: ask a few times on new connections.
    for _ in range(4):
        expect(d, "/edit/a.html", 403, "after the tenant wrote a deny")
    # The same size, only a later mtime: the cache must notice.
    d.tree.write(path, "Require all granted", h.UID_A)
    later = time.time() + 5
    os.utime(path, (later, later))
    time.sleep(settle)
    for _ in range(4):
        expect(d, "/edit/a.html", 200, "after the tenant replaced it by a grant of the same size")
    d.tree.write(path, "Require all denied\n", h.UID_A)
    time.sleep(settle)
    expect(d, "/edit/a.html", 403, "after the tenant wrote the deny again")
    os.unlink(path)
    time.sleep(settle)
    expect(d, "/edit/a.html", 200, "after the tenant removed it")


def unreadable_htaccess_fails_closed(d):
    expect(d, "/locked/a.html", 403, "a mode 000 .htaccess owned by the tenant")
    h.check("cannot be read" in d.log_text() and "locked/.htaccess" in d.log_text(),
            "the journal should say which .htaccess could not be read")


def lines_not_applied_are_logged_with_file_and_line(d):
    expect(d, "/doku.php", 200, "a request that reads the root .htaccess")
    want = f"{d.root_a}/.htaccess:1: `RewriteEngine On` is not applied by itk"
    h.check(h.wait_until(lambda: want in d.log_text(), 3), f"expected in the log: {want}\n{d.log_tail()}")
    resp = expect(d, "/grant/a.html", 200, "a directory whose .htaccess only grants")
    want2 = f"{d.root_a}/grant/.htaccess:1: `Require all granted` is not applied"
    h.check(h.wait_until(lambda: want2 in d.log_text(), 3), f"expected in the log: {want2}")


def fallback_and_error_documents_obey_access_rules(_):
    """FallbackResource and ErrorDocument are requests of their own: the access rules still decide."""
    tree = h.two_tenant_tree(a_keys={"CGI": ".cgi", "FallbackResource": "/front.cgi", "Deny": "/private",
                                     "ErrorDocument": "404 /private/404.html"})
    ra = tree.root_a
    seen = tree.path("front-seen")
    tree.write(seen, "", h.UID_A, mode=0o644)
    tree.write(os.path.join(ra, "front.cgi"),
               f"#!/bin/sh\necho \"$REQUEST_URI\" >> {seen}\nprintf 'Content-Type: text/plain\\n\\nfront\\n'\n",
               h.UID_A, mode=0o755)
    tree.write(os.path.join(ra, "private/404.html"), PRIVATE + "\n", h.UID_A)
    tree.write(os.path.join(ra, "page.html"), "page\n", h.UID_A)
    d = h.Daemon(tree, name="itkd-access-routes").start()
    try:
        resp = expect(d, "/2026/12/06/hello/", 200, "a pretty permalink through the front controller")
        h.expect_eq(resp.body, b"front\n", "the front controller's answer")
        for path in ("/private/missing", "/private/", "/.env-missing", "/.git/missing/x", "/%2eenv"):
            expect(d, path, 403, "a missing path where the rules refuse, not the front controller")
        # A file with path after it is 404; its ErrorDocument lies in a denied place: the built-in page.
        expect(d, "/page.html/extra", 404, "an ErrorDocument the rules refuse", PRIVATE)
        with open(seen) as f:
            ran = f.read().split()
        h.expect_eq(ran, ["/2026/12/06/hello/"], "requests the front controller saw")
    finally:
        d.stop()


SCENARIOS = [
    dotfiles_refused_by_default,
    well_known_is_served,
    dotfiles_served_when_switched_off,
    dokuwiki_tree,
    subdirectory_grant_does_not_reopen,
    files_match_denies_matching_names,
    deny_prefixes,
    hostile_encodings,
    symlinks_into_refused_places,
    scripts_in_refused_places_never_run,
    edited_htaccess_applies_without_reload,
    unreadable_htaccess_fails_closed,
    lines_not_applied_are_logged_with_file_and_line,
    fallback_and_error_documents_obey_access_rules,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)
