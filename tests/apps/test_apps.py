# Real applications through itkd, driven with curl as a visitor and an administrator would: WordPress
# (Debian's package, MariaDB) as uid 2041 on wp.test and DokuWiki (Debian's package) as uid 2042 on
# wiki.test, each a copy of the packaged tree owned by its tenant, PHP through FastCGI pools.
#
# WordPress: the installer, a login, pretty permalinks set on the Permalinks screen, a post made through
# the REST API and read back by its permalink and through /wp-json/, a media upload served back with the
# same bytes and owned by the tenant, the pages' assets, no PHP run from uploads. DokuWiki: the installer,
# a login, a page edited, viewed and found by search, data/ and conf/ refused by DokuWiki's own .htaccess
# files, the admin's check page.
# Across tenants: neither application's PHP reads the other's secrets.
#
# Missing packages (wordpress wordpress-theme-twentytwentythree dokuwiki mariadb-server php-mysql php-cgi
# curl) are installed with apt-get --no-install-recommends, with services kept from starting during the
# install (a temporary /usr/sbin/policy-rc.d unless one exists) and apache2 stopped and disabled if the
# install brought it. MariaDB runs privately: its own data directory and socket in the test's temporary
# tree, no network, stopped at the end. Nothing of the host's /etc is written by the test itself.
# Where the packages cannot be installed, every case is SKIPPED with the reason (a failure with
# ITK_NSPAWN_REQUIRE=1, which CI sets, or ITK_APPS_REQUIRE=1).

import atexit
import html
import html.parser
import json
import os
import pwd
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402

PACKAGES = ["wordpress", "wordpress-theme-twentytwentythree", "dokuwiki", "mariadb-server", "php-mysql",
            "php-cgi", "curl"]
# Numeric ids without passwd entries, as in the integration tests, and used by no other suite: whatever
# they leave running is killed by uid at the end.
UID_WP = 2041
UID_WIKI = 2042
WP_HOST = "wp.test"
WIKI_HOST = "wiki.test"
ADMIN_USER = "itkadmin"
ADMIN_PASSWORD = "Corr3ct-Horse-Battery-Staple"
ADMIN_EMAIL = "admin@example.org"
DB_NAME = "wordpress"
DB_USER = "wp"
DB_PASSWORD = "wp-db-secret-7361"
POST_TITLE = "Served by itk as its own user"
WIKI_TEXT = "====== Start ======\n\nThis page was written through **itk** by the wiki's own uid.\n"
CURL_TIMEOUT = 60


def diag(text):
    for line in str(text).splitlines() or [""]:
        print(f"# {line}", flush=True)


# ---------------------------------------------------------------------------------------------------
# Packages

def installed(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return p.stdout.decode().strip() == "installed"


def stop_system_service(svc, pidfile):
    """What tools/bench does for a web server whose package started and enabled it."""
    quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["service", svc, "stop"], **quiet)
    try:
        pid = int(open(pidfile).read().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass
    subprocess.run(["systemctl", "disable", svc], **quiet)
    subprocess.run(["update-rc.d", svc, "disable"], **quiet)
    diag(f"stopped and disabled the system service {svc}, which its package had enabled")


def ensure_packages():
    """None when every package is there (installing the missing ones), else why they cannot be."""
    missing = [p for p in PACKAGES if not installed(p)]
    if not missing:
        return None
    if not shutil.which("apt-get"):
        return f"packages missing ({' '.join(missing)}) and no apt-get to install them"
    had_apache, had_mariadb = installed("apache2"), installed("mariadb-server")
    diag(f"installing {' '.join(missing)} (apt-get --no-install-recommends)")
    policy = "/usr/sbin/policy-rc.d"
    made_policy = False
    if not os.path.lexists(policy):
        # Debian's way of keeping maintainer scripts from starting services (MariaDB, apache2).
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# written by itk's tests/apps for the duration of an apt-get install\nexit 101\n")
        os.chmod(policy, 0o755)
        made_policy = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    start = time.monotonic()
    log = tempfile.NamedTemporaryFile(prefix="itk-apps-apt-", suffix=".log", delete=False)
    try:
        status = 0
        # Bounded so that the whole test stays within meson's timeout (900 s).
        for cmd, limit in ((["apt-get", "update"], 180),
                           (["apt-get", "install", "-y", "--no-install-recommends", *missing], 540)):
            try:
                status = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, timeout=limit).returncode
            except subprocess.TimeoutExpired:
                status = f"a timeout ({limit} s)"
            if status != 0 and cmd[1] == "install":
                break
        log.flush()
    finally:
        if made_policy:
            os.unlink(policy)
        log.close()
    if not had_apache and installed("apache2"):
        stop_system_service("apache2", "/run/apache2/apache2.pid")
    if not had_mariadb and installed("mariadb-server"):
        stop_system_service("mariadb", "/run/mysqld/mysqld.pid")
    with open(log.name, errors="replace") as f:
        lines = f.read().splitlines()
    os.unlink(log.name)
    still = [p for p in PACKAGES if not installed(p)]
    if still:
        said = [t.strip() for t in lines if t.startswith(("E:", "Err:"))] or [t.strip() for t in lines[-3:]]
        return f"cannot install {' '.join(still)}: apt-get exited with {status}: " + " | ".join(said[-3:])
    diag(f"packages installed in {time.monotonic() - start:.0f} s")
    return None


# ---------------------------------------------------------------------------------------------------
# A browser: curl with a cookie jar, every connection to itkd's port whatever host the URL names.

class Resp:
    def __init__(self, status, headers, body, url):
        self.status, self.headers, self.body, self.url = status, headers, body, url

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise h.Fail(f"{self.url}: expected JSON, got {self.describe()}") from None

    def describe(self, limit=600):
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        body = self.text
        more = f" (+{len(body) - limit} chars)" if len(body) > limit else ""
        return f"status {self.status}\n{head}\nbody: {body[:limit]!r}{more}"


class Browser:
    def __init__(self, tree, daemon, host, name):
        self.daemon, self.port, self.host = daemon, daemon.port, host
        self.jar = tree.path(f"cookies-{name}.txt")
        self.work = tree.path(f"curl-{name}")
        os.makedirs(self.work, exist_ok=True)

    def url(self, path):
        return path if path.startswith("http") else f"http://{self.host}{path}"

    def request(self, method, path, form=None, data=None, headers=(), cookies=True):
        # itkd's master sends STATUS= to its notify socket as it serves (sd_notify, which blocks once the
        # socket's queue is full, as systemd never lets it be): read them, as systemd would.
        self.daemon.notify.drain()
        url = self.url(path)
        host = urllib.parse.urlsplit(url).hostname
        head_file, body_file = os.path.join(self.work, "head"), os.path.join(self.work, "body")
        cmd = ["curl", "-sS", "--max-time", str(CURL_TIMEOUT), "--connect-to", f"{host}:80:127.0.0.1:{self.port}",
               "-X", method, "-D", head_file, "-o", body_file, "-w", "%{http_code}"]
        if cookies:
            cmd += ["-b", self.jar, "-c", self.jar]
        for hd in headers:
            cmd += ["-H", hd]
        stdin = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            cmd += ["-H", "Content-Type: application/x-www-form-urlencoded"]
        if data is not None:
            cmd += ["--data-binary", "@-"]
            stdin = data
        cmd.append(url)
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CURL_TIMEOUT + 10)
        if p.returncode != 0:
            raise h.Fail(f"curl {method} {url}: exit {p.returncode}: {p.stderr.decode(errors='replace').strip()}")
        headers_out = {}
        with open(head_file, "rb") as f:
            for line in f.read().decode("latin-1").split("\r\n")[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers_out.setdefault(name.strip().lower(), value.strip())
        with open(body_file, "rb") as f:
            body = f.read()
        return Resp(int(p.stdout or b"0"), headers_out, body, url)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def cookie_names(self):
        names = []
        try:
            with open(self.jar) as f:
                for line in f:
                    if line.startswith("#HttpOnly_"):
                        line = line[len("#HttpOnly_"):]
                    elif line.startswith("#") or not line.strip():
                        continue
                    fields = line.rstrip("\n").split("\t")
                    if len(fields) >= 7:
                        names.append(fields[5])
        except OSError:
            pass
        return names


def expect(resp, status, what):
    wanted = status if isinstance(status, tuple) else (status,)
    if resp.status not in wanted:
        raise h.Fail(f"{what}: expected status {' or '.join(map(str, wanted))}, got {resp.describe()}")


def expect_text(resp, needle, what):
    if needle not in resp.text:
        raise h.Fail(f"{what}: expected the page to contain {needle!r}, got {resp.describe()}")


# ---------------------------------------------------------------------------------------------------
# HTML forms, read as a browser submits them

class FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._form = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"attrs": a, "fields": {}, "submits": []}
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            name = a.get("name")
            if not name:
                return
            if kind in ("submit", "button", "image"):
                self._form["submits"].append((name, a.get("value", "")))
            elif kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form["fields"][name] = a.get("value", "on")
            else:
                self._form["fields"][name] = a.get("value", "")
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self._form["fields"][self._textarea] = ""
        elif tag == "button" and a.get("name"):
            self._form["submits"].append((a["name"], a.get("value", "")))

    def handle_data(self, data):
        if self._textarea is not None and self._form is not None:
            self._form["fields"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._form = None


def find_form(resp, predicate, what):
    p = FormParser()
    p.feed(resp.text)
    for form in p.forms:
        if predicate(form):
            return form
    raise h.Fail(f"{what}: no such form on the page ({len(p.forms)} forms); {resp.describe()}")


def submit_form(browser, page, has_field, values, what, drop=()):
    """GETs `page`, takes its form that has the field `has_field`, and posts it to the form's action as a
    browser would: its hidden fields (nonces, tokens) and defaults, `values` typed in, `drop` unticked.
    Returns (the answer to the POST, the form's fields as the page gave them)."""
    r = browser.get(page)
    expect(r, 200, what)
    form = find_form(r, lambda f: has_field in f["fields"], what)
    fields = {k: v for k, v in form["fields"].items() if k not in drop}
    fields.update(values)
    action = urllib.parse.urljoin(browser.url(page), html.unescape(form["attrs"].get("action") or page))
    return browser.post(action, form=fields), form["fields"]


# ---------------------------------------------------------------------------------------------------
# A private MariaDB: data directory and socket in the tree, no TCP, stopped at exit

class MariaDB:
    def __init__(self, tree):
        self.base = tree.path("mysql")
        self.datadir = os.path.join(self.base, "data")
        self.socket = os.path.join(self.base, "mysqld.sock")
        self.log = os.path.join(self.base, "error.log")
        self.proc = None
        try:
            pw = pwd.getpwnam("mysql")
            self.user, self.uid, self.gid = "mysql", pw.pw_uid, pw.pw_gid
        except KeyError:
            self.user, self.uid, self.gid = "root", 0, 0
        os.makedirs(self.datadir)
        os.chmod(self.base, 0o755)  # tenants reach the socket (mysqld makes it 0777)
        os.chmod(self.datadir, 0o700)
        for d in (self.base, self.datadir):
            os.chown(d, self.uid, self.gid)
        atexit.register(self.stop)

    def start(self):
        out = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
                              f"--user={self.user}", "--auth-root-authentication-method=socket",
                              "--skip-test-db"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=120)
        if out.returncode != 0:
            raise h.Fail(f"mariadb-install-db failed ({out.returncode}): {out.stdout.decode(errors='replace')[-800:]}")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
                 f"--pid-file={self.base}/mysqld.pid", "--skip-networking", f"--user={self.user}",
                 f"--log-error={self.log}", "--innodb-buffer-pool-size=32M", "--skip-log-bin",
                 "--innodb-log-file-size=16M"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise h.Fail(f"mariadbd exited with {self.proc.returncode}: {self.log_tail()}")
            if os.path.exists(self.socket) and self.sql("SELECT 1", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise h.Fail(f"mariadbd not answering on {self.socket} after 60 s: {self.log_tail()}")

    def sql(self, statement, check=True, database=None):
        cmd = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root", "-N", "-B", "-e", statement]
        if database:
            cmd.append(database)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if check and p.returncode != 0:
            raise h.Fail(f"SQL {statement!r}: {p.stderr.decode(errors='replace').strip()}")
        return p

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return " | ".join(f.read().splitlines()[-6:])
        except OSError:
            return "(no log)"

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


# ---------------------------------------------------------------------------------------------------
# The tenants' trees: copies of the packaged applications, with Debian's symlinks made real files

def copy_tree(src, dst, uid):
    """src copied to dst with every symbolic link resolved (cp -L), owned by uid:uid."""
    subprocess.run(["cp", "-rL", "--preserve=mode,timestamps", src, dst], check=True, stdin=subprocess.DEVNULL)
    subprocess.run(["chown", "-R", "--no-dereference", f"{uid}:{uid}", dst], check=True)


def wordpress_tree(tree, db):
    root = os.path.join(tree.www, "wp")
    copy_tree("/usr/share/wordpress", root, UID_WP)
    # Debian keeps wp-content (themes, plugins, uploads) in /var/lib/wordpress and reads its
    # configuration from /etc/wordpress: the tenant gets both as its own files, as on any host.
    shutil.rmtree(os.path.join(root, "wp-content"))
    copy_tree("/var/lib/wordpress/wp-content", os.path.join(root, "wp-content"), UID_WP)
    keys = "".join(f"define('{k}', '{os.urandom(24).hex()}');\n" for k in (
        "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
        "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))
    config = f"""<?php
define('DB_NAME', '{DB_NAME}');
define('DB_USER', '{DB_USER}');
define('DB_PASSWORD', '{DB_PASSWORD}');
define('DB_HOST', 'localhost:{db.socket}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{keys}$table_prefix = 'wp_';
define('WP_DEBUG', false);
define('DISABLE_WP_CRON', true);
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
"""
    tree.write(os.path.join(root, "wp-config.php"), config, UID_WP, mode=0o640)
    os.chmod(root, 0o750)
    return root


def dokuwiki_tree(tree):
    root = os.path.join(tree.www, "wiki")
    copy_tree("/usr/share/dokuwiki", root, UID_WIKI)
    # Debian's preload.php points DokuWiki at /etc/dokuwiki and /var/lib/dokuwiki; without it DokuWiki uses
    # conf/ and data/ in its own tree, as upstream ships it.
    os.unlink(os.path.join(root, "inc", "preload.php"))
    conf = os.path.join(root, "conf")
    copy_tree("/etc/dokuwiki", conf, UID_WIKI)
    # What Debian's postinst wrote (the installer writes them anew) and Debian's web server snippets.
    for name in ("local.php", "users.auth.php", "acl.auth.php", "apache.conf", "lighttpd.conf", "htaccess"):
        try:
            os.unlink(os.path.join(conf, name))
        except FileNotFoundError:
            pass
    main = os.path.join(conf, "dokuwiki.php")
    with open(main) as f:
        text = f.read()
    text = re.sub(r"\$conf\['savedir'\]\s*=\s*'[^']*';", "$conf['savedir'] = './data';", text)
    with open(main, "w") as f:
        f.write(text)
    copy_tree("/var/lib/dokuwiki/data", os.path.join(root, "data"), UID_WIKI)
    os.chmod(root, 0o750)
    return root


# ---------------------------------------------------------------------------------------------------
# The fixture: MariaDB, both trees, itkd

class Apps:
    pass


def setup():
    tree = h.Tree(prefix="itk-apps-")
    h.cleanup_uid_at_exit(UID_WP)
    h.cleanup_uid_at_exit(UID_WIKI)
    t0 = time.monotonic()
    db = MariaDB(tree).start()
    db.sql(f"CREATE DATABASE {DB_NAME}; CREATE USER '{DB_USER}'@'localhost' IDENTIFIED BY '{DB_PASSWORD}'; "
           f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'localhost';")
    diag(f"private MariaDB up in {time.monotonic() - t0:.1f} s")
    wp_root = wordpress_tree(tree, db)
    wiki_root = dokuwiki_tree(tree)
    tree.write_server_conf(StartServers=2, User=h.ACCEPTOR_USER)
    tree.write_dropin("10-wp.test.conf", WP_VHOST.format(root=wp_root, uid=UID_WP))
    tree.write_dropin("20-wiki.test.conf", WIKI_VHOST.format(root=wiki_root, uid=UID_WIKI))
    d = h.Daemon(tree)
    d.start()
    a = Apps()
    a.tree, a.db, a.daemon = tree, db, d
    a.wp_root, a.wiki_root = wp_root, wiki_root
    a.wp = Browser(tree, d, WP_HOST, "wp")
    a.wiki = Browser(tree, d, WIKI_HOST, "wiki")
    a.visitor_wp = Browser(tree, d, WP_HOST, "visitor-wp")
    a.visitor_wiki = Browser(tree, d, WIKI_HOST, "visitor-wiki")
    a.done = set()
    a.post = None
    diag(f"fixture ready in {time.monotonic() - t0:.1f} s")
    return a


# The vhosts, as docs/migrating.md gives them.
WP_VHOST = """[vhost]
ServerName = wp.test
DocumentRoot = {root}
AssignUserID = #{uid} #{uid}
DirectoryIndex = index.php index.html
FallbackResource = /index.php
FastCGI = .php /usr/bin/php-cgi
NoExec = /wp-content/uploads/
"""

WIKI_VHOST = """[vhost]
ServerName = wiki.test
DocumentRoot = {root}
AssignUserID = #{uid} #{uid}
DirectoryIndex = doku.php
FastCGI = .php /usr/bin/php-cgi
"""


def needs(a, *steps):
    for s in steps:
        if s not in a.done:
            raise h.Fail(f"not checked: it needs the step `{s}`, which failed")


def owner_of(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid


# ---------------------------------------------------------------------------------------------------
# WordPress

def wordpress_installer_creates_the_site(a):
    r = a.wp.get("/")
    # No tables yet: WordPress sends the visitor to its installer.
    expect(r, 302, "GET / before installing")
    h.check("/wp-admin/install.php" in (r.header("location") or ""),
            f"GET / before installing: expected a redirect to the installer, got {r.describe()}")
    # The form of step 1 posts to install.php?step=2.
    r, _ = submit_form(a.wp, "/wp-admin/install.php?step=1", "weblog_title", {
        "weblog_title": "itk test blog", "user_name": ADMIN_USER, "admin_password": ADMIN_PASSWORD,
        "admin_password2": ADMIN_PASSWORD, "pw_weak": "on", "admin_email": ADMIN_EMAIL, "blog_public": "0",
        "Submit": "Install WordPress", "language": ""}, "installer form")
    h.check(r.url.endswith("/wp-admin/install.php?step=2"), f"installer form: posted to {r.url}, not step 2")
    expect(r, 200, "installer step 2")
    expect_text(r, "Success!", "installer step 2")
    count = a.db.sql("SELECT COUNT(*) FROM wp_users", database=DB_NAME).stdout.decode().strip()
    h.expect_eq(count, "1", "users in the WordPress database after installing")
    a.done.add("wp-install")


def wordpress_login_reaches_the_dashboard(a):
    needs(a, "wp-install")
    r, _ = submit_form(a.wp, "/wp-login.php", "log", {"log": ADMIN_USER, "pwd": ADMIN_PASSWORD,
                                                       "wp-submit": "Log In"}, "login form")
    expect(r, 302, "login POST")
    h.check((r.header("location") or "").endswith("/wp-admin/"),
            f"login POST: expected a redirect to /wp-admin/, got {r.describe()}")
    h.check(any(n.startswith("wordpress_logged_in_") for n in a.wp.cookie_names()),
            f"login POST: expected a wordpress_logged_in_ cookie, got {a.wp.cookie_names()}")
    r = a.wp.get("/wp-admin/")
    expect(r, 200, "dashboard")
    expect_text(r, "Dashboard", "dashboard")
    a.done.add("wp-login")


PERMALINKS = "/%year%/%monthnum%/%day%/%postname%/"


def wordpress_pretty_permalinks_set_on_the_permalinks_screen(a):
    needs(a, "wp-login")
    # "Custom Structure": WordPress offers /index.php/... on a server it does not know as Apache or nginx.
    r, _ = submit_form(a.wp, "/wp-admin/options-permalink.php", "permalink_structure", {
        "selection": "custom", "permalink_structure": PERMALINKS, "submit": "Save Changes"}, "Permalinks form")
    expect(r, (200, 302), "Permalinks POST")
    got = a.db.sql("SELECT option_value FROM wp_options WHERE option_name = 'permalink_structure'",
                   database=DB_NAME).stdout.decode().strip()
    h.expect_eq(got, PERMALINKS, "permalink_structure after saving the Permalinks screen")
    a.done.add("wp-permalinks")


def wordpress_post_created_through_the_rest_api(a):
    needs(a, "wp-login", "wp-permalinks")
    r = a.wp.get("/wp-admin/admin-ajax.php?action=rest-nonce")
    expect(r, 200, "REST nonce")
    nonce = r.text.strip()
    h.check(re.fullmatch(r"[0-9a-f]{10}", nonce), f"REST nonce: expected 10 hex digits, got {r.describe()}")
    a.nonce = nonce
    body = json.dumps({"title": POST_TITLE, "content": f"<p>Hello from uid {UID_WP}.</p>", "status": "publish"})
    r = a.wp.post("/wp-json/wp/v2/posts", data=body.encode(),
                  headers=["Content-Type: application/json", f"X-WP-Nonce: {nonce}"])
    expect(r, 201, "POST /wp-json/wp/v2/posts")
    post = r.json()
    link = urllib.parse.urlsplit(post.get("link", ""))
    h.check(re.fullmatch(r"/\d{4}/\d{2}/\d{2}/served-by-itk-as-its-own-user/", link.path or ""),
            f"new post: expected a pretty permalink, got link {post.get('link')!r}")
    a.post = post
    a.done.add("wp-post")


def wordpress_post_read_by_its_pretty_permalink(a):
    needs(a, "wp-post")
    path = urllib.parse.urlsplit(a.post["link"]).path
    r = a.visitor_wp.get(path)
    expect(r, 200, f"GET {path} as a visitor")
    expect_text(r, POST_TITLE, f"GET {path}")
    expect_text(r, f"Hello from uid {UID_WP}.", f"GET {path}")


def wordpress_posts_listed_through_wp_json(a):
    needs(a, "wp-post")
    r = a.visitor_wp.get("/wp-json/wp/v2/posts")
    expect(r, 200, "GET /wp-json/wp/v2/posts as a visitor")
    h.check((r.header("content-type") or "").startswith("application/json"),
            f"GET /wp-json/wp/v2/posts: expected JSON, got {r.describe()}")
    posts = r.json()
    mine = [p for p in posts if p.get("id") == a.post["id"]]
    h.check(mine and mine[0]["title"]["rendered"] == POST_TITLE,
            f"GET /wp-json/wp/v2/posts: expected post {a.post['id']} titled {POST_TITLE!r}, got "
            f"{[(p.get('id'), p.get('title')) for p in posts]}")
    r = a.visitor_wp.get(f"/wp-json/wp/v2/posts/{a.post['id']}")
    expect(r, 200, "GET one post through /wp-json/")
    h.expect_eq(r.json().get("link"), a.post["link"], "the post's link through /wp-json/")


def png(width=24, height=16):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + b"".join(bytes((x * 10 % 256, y * 15 % 256, 128)) for x in range(width))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def wordpress_media_upload_served_and_owned_by_the_tenant(a):
    needs(a, "wp-post")
    image = png()
    r = a.wp.post("/wp-json/wp/v2/media", data=image,
                  headers=["Content-Type: image/png", 'Content-Disposition: attachment; filename="itk-upload.png"',
                           f"X-WP-Nonce: {a.nonce}"])
    expect(r, 201, "POST /wp-json/wp/v2/media")
    media = r.json()
    url = media.get("source_url", "")
    path = urllib.parse.urlsplit(url).path
    h.check(path.startswith("/wp-content/uploads/") and path.endswith(".png"),
            f"uploaded media: expected a URL under /wp-content/uploads/, got {url!r}")
    r = a.visitor_wp.get(path)
    expect(r, 200, f"GET {path}")
    h.check(r.body == image, f"GET {path}: expected the {len(image)} bytes uploaded, got {len(r.body)} bytes "
                             f"that differ")
    h.expect_eq(r.header("content-type"), "image/png", f"Content-Type of {path}")
    on_disk = os.path.join(a.wp_root, path.lstrip("/"))
    h.expect_eq(owner_of(on_disk), (UID_WP, UID_WP), f"owner (uid, gid) of {on_disk}")
    a.upload_dir = os.path.dirname(on_disk)
    a.done.add("wp-media")


def page_assets(browser, path):
    """Same-site stylesheets, scripts and images of a page, as a browser would fetch them."""
    r = browser.get(path)
    expect(r, 200, f"GET {path}")
    found = set(re.findall(r'<(?:script|img)\b[^>]*\ssrc=["\']([^"\']+)', r.text))
    found |= set(re.findall(r'<link\b[^>]*\srel=["\'](?:stylesheet|icon|shortcut icon)["\'][^>]*\shref=["\']([^"\']+)', r.text))
    found |= set(re.findall(r'<link\b[^>]*\shref=["\']([^"\']+)["\'][^>]*\srel=["\'](?:stylesheet|icon|shortcut icon)["\']', r.text))
    paths = []
    for url in sorted(found):
        parts = urllib.parse.urlsplit(html.unescape(url))
        if parts.hostname not in (None, browser.host):
            continue
        rel = parts.path if parts.path.startswith("/") else "/" + parts.path
        paths.append(rel + ("?" + parts.query if parts.query else ""))
    h.check(len(paths) >= 3, f"GET {path}: expected stylesheets, scripts and images, found {paths}")
    bad = []
    for p in paths:
        rr = browser.get(p)
        if rr.status != 200 or not rr.body:
            bad.append(f"{p}: {rr.status} ({len(rr.body)} bytes, {rr.header('content-type')})")
    h.check(not bad, f"assets of {path} ({len(paths)} in all) not served:\n" + "\n".join(bad))
    return paths


def wordpress_post_page_assets_load(a):
    needs(a, "wp-post")
    paths = page_assets(a.visitor_wp, urllib.parse.urlsplit(a.post["link"]).path)
    diag(f"{len(paths)} assets of the post page served")


def wordpress_dashboard_assets_load(a):
    needs(a, "wp-login")
    paths = page_assets(a.wp, "/wp-admin/")
    h.check(any(p.startswith("/wp-admin/load-styles.php") for p in paths),
            f"dashboard: expected the concatenated styles of load-styles.php among {paths}")
    diag(f"{len(paths)} assets of the dashboard served")


def wordpress_runs_no_php_from_uploads(a):
    needs(a, "wp-media")
    # What an upload form that let a script through would leave: NoExec answers 403, never runs or sends it.
    script = os.path.join(a.upload_dir, "shell.php")
    a.tree.write(script, "<?php echo 'ran as ', posix_getuid();\n", UID_WP)
    rel = "/" + os.path.relpath(script, a.wp_root)
    r = a.visitor_wp.get(rel)
    expect(r, 403, f"GET {rel}")
    h.check(b"posix_getuid" not in r.body and b"ran as" not in r.body,
            f"GET {rel}: the script was run or sent: {r.describe()}")


def wordpress_config_is_run_not_sent(a):
    needs(a, "wp-install")
    r = a.visitor_wp.get("/wp-config.php")
    expect(r, 200, "GET /wp-config.php")
    h.check(DB_PASSWORD.encode() not in r.body, f"GET /wp-config.php sent the database password: {r.describe()}")


# ---------------------------------------------------------------------------------------------------
# DokuWiki

def dokuwiki_installer_configures_the_wiki(a):
    # Policy 1, "Public Wiki": everyone reads, registered users write; no popularity feedback.
    r, _ = submit_form(a.wiki, "/install.php", "d[title]", {
        "d[title]": "itk test wiki", "d[acl]": "on", "d[superuser]": ADMIN_USER, "d[fullname]": "Wiki Admin",
        "d[email]": ADMIN_EMAIL, "d[password]": ADMIN_PASSWORD, "d[confirm]": ADMIN_PASSWORD, "d[policy]": "1",
        "d[license]": "cc-by-sa", "submit": "Save"}, "DokuWiki installer", drop=("d[pop]", "d[allowreg]"))
    expect(r, 200, "DokuWiki installer POST")
    expect_text(r, "The configuration was finished successfully", "DokuWiki installer POST")
    for name in ("local.php", "users.auth.php", "acl.auth.php"):
        path = os.path.join(a.wiki_root, "conf", name)
        h.check(os.path.exists(path), f"after the installer: expected {path}")
        h.expect_eq(owner_of(path), (UID_WIKI, UID_WIKI), f"owner (uid, gid) of {path}")
    a.done.add("wiki-install")


def dokuwiki_login(a):
    needs(a, "wiki-install")
    r, _ = submit_form(a.wiki, "/doku.php?id=start&do=login", "u", {"u": ADMIN_USER, "p": ADMIN_PASSWORD},
                       "DokuWiki login form")
    expect(r, (200, 302, 303), "DokuWiki login POST")
    r = a.wiki.get("/doku.php?id=start")
    expect(r, 200, "DokuWiki after login")
    expect_text(r, "Log Out", "DokuWiki after login")
    a.done.add("wiki-login")


def dokuwiki_page_created_with_the_editor(a):
    needs(a, "wiki-login")
    r, fields = submit_form(a.wiki, "/doku.php?id=start&do=edit", "wikitext", {
        "wikitext": WIKI_TEXT, "summary": "written through itk", "do[save]": "Save"}, "DokuWiki editor")
    h.check(fields.get("sectok"), f"DokuWiki edit form: expected a sectok, got fields {sorted(fields)}")
    expect(r, (200, 302, 303), "DokuWiki save")
    page = os.path.join(a.wiki_root, "data", "pages", "start.txt")
    h.check(os.path.exists(page), f"after saving: expected {page}; save answered {r.describe()}")
    with open(page) as f:
        h.expect_eq(f.read().strip(), WIKI_TEXT.strip(), f"content of {page}")
    h.expect_eq(owner_of(page), (UID_WIKI, UID_WIKI), f"owner (uid, gid) of {page}")
    a.done.add("wiki-page")


def dokuwiki_page_viewed_by_a_visitor(a):
    needs(a, "wiki-page")
    r = a.visitor_wiki.get("/doku.php?id=start")
    expect(r, 200, "GET /doku.php?id=start as a visitor")
    expect_text(r, "This page was written through <strong>itk</strong>", "GET /doku.php?id=start")
    r = a.visitor_wiki.get("/")
    expect(r, 200, "GET / (DirectoryIndex doku.php)")
    expect_text(r, "This page was written through <strong>itk</strong>", "GET /")


def dokuwiki_page_assets_load(a):
    needs(a, "wiki-page")
    paths = page_assets(a.visitor_wiki, "/doku.php?id=start")
    diag(f"{len(paths)} assets of the wiki page served")


def dokuwiki_search_finds_the_page(a):
    needs(a, "wiki-page")
    # The page's taskrunner image runs the indexer after its answer is sent (ignore_user_abort).
    r = a.visitor_wiki.get("/doku.php?id=start")
    m = re.search(r'src="([^"]*lib/exe/taskrunner\.php[^"]*)"', r.text)
    h.check(m, f"wiki page: expected the taskrunner image, got {r.describe()}")
    expect(a.visitor_wiki.get(html.unescape(m.group(1))), 200, "taskrunner")

    def found():
        rr = a.visitor_wiki.get("/doku.php?do=search&q=written")
        return rr if rr.status == 200 and 'data-wiki-id="start"' in rr.text else None
    r = h.wait_until(found, 15, 0.5)
    h.check(r, "search for `written`: the page `start` not found within 15 s")


def dokuwiki_data_refused(a):
    needs(a, "wiki-page")
    for path in ("/data/pages/start.txt", "/data/", "/data/pages/"):
        r = a.visitor_wiki.get(path)
        expect(r, 403, f"GET {path}")
        h.check(b"written through" not in r.body, f"GET {path}: the page source was sent: {r.describe()}")


def dokuwiki_conf_refused(a):
    needs(a, "wiki-install")
    for path in ("/conf/local.php", "/conf/users.auth.php", "/conf/acl.auth.php", "/VERSION", "/.htaccess"):
        r = a.visitor_wiki.get(path)
        expect(r, 403, f"GET {path}")
        h.check(b"$conf" not in r.body and ADMIN_EMAIL.encode() not in r.body,
                f"GET {path}: the file was sent: {r.describe()}")


def dokuwiki_check_page_as_admin(a):
    needs(a, "wiki-login")
    r = a.wiki.get("/doku.php?id=start&do=check")
    expect(r, 200, "DokuWiki check page")
    expect_text(r, "DokuWiki version", "DokuWiki check page")
    # Its own reading of what it needs: data and conf writable by the user it runs as.
    bad = re.findall(r'<div class="error">(.*?)</div>', r.text, re.S)
    h.check(not bad, f"DokuWiki check page reports errors: {bad}")


# ---------------------------------------------------------------------------------------------------
# Across tenants

PEEK = """<?php
header('Content-Type: text/plain');
$f = $_GET['f'];
$s = @file_get_contents($f);
$e = error_get_last();
echo 'uid=', posix_getuid(), "\\n";
echo $s === false ? 'refused: ' . ($e ? $e['message'] : '?') : 'read: ' . $s, "\\n";
"""


def peek(a, browser, root, uid, target):
    a.tree.write(os.path.join(root, "itk-peek.php"), PEEK, uid)
    r = browser.get("/itk-peek.php?f=" + urllib.parse.quote(target))
    expect(r, 200, f"peek at {target}")
    return r


def wordpress_cannot_read_the_wikis_users(a):
    needs(a, "wiki-install")
    target = os.path.join(a.wiki_root, "conf", "users.auth.php")
    r = peek(a, a.visitor_wp, a.wp_root, UID_WP, target)
    expect_text(r, f"uid={UID_WP}", "the peeking script's uid")
    expect_text(r, "Permission denied", f"wp.test's PHP reading {target}")
    h.check("read:" not in r.text, f"wp.test's PHP read {target}: {r.describe()}")


def wiki_cannot_read_wordpress_config(a):
    needs(a, "wp-install")
    target = os.path.join(a.wp_root, "wp-config.php")
    r = peek(a, a.visitor_wiki, a.wiki_root, UID_WIKI, target)
    expect_text(r, f"uid={UID_WIKI}", "the peeking script's uid")
    expect_text(r, "Permission denied", f"wiki.test's PHP reading {target}")
    h.check(DB_PASSWORD not in r.text, f"wiki.test's PHP read {target}: {r.describe()}")


SCENARIOS = [
    wordpress_installer_creates_the_site,
    wordpress_login_reaches_the_dashboard,
    wordpress_pretty_permalinks_set_on_the_permalinks_screen,
    wordpress_post_created_through_the_rest_api,
    wordpress_post_read_by_its_pretty_permalink,
    wordpress_posts_listed_through_wp_json,
    wordpress_media_upload_served_and_owned_by_the_tenant,
    wordpress_post_page_assets_load,
    wordpress_dashboard_assets_load,
    wordpress_runs_no_php_from_uploads,
    wordpress_config_is_run_not_sent,
    dokuwiki_installer_configures_the_wiki,
    dokuwiki_login,
    dokuwiki_page_created_with_the_editor,
    dokuwiki_page_viewed_by_a_visitor,
    dokuwiki_page_assets_load,
    dokuwiki_search_finds_the_page,
    dokuwiki_data_refused,
    dokuwiki_conf_refused,
    dokuwiki_check_page_as_admin,
    wordpress_cannot_read_the_wikis_users,
    wiki_cannot_read_wordpress_config,
]


def with_log(fn):
    """The scenario, with what itkd logged meanwhile added to its failure."""
    def scenario(a):
        before = len(a.daemon.log_text())
        try:
            fn(a)
        except h.Fail as e:
            logged = a.daemon.log_text()[before:].splitlines()
            if logged and "not checked:" not in str(e):
                shown = logged[-30:]
                raise h.Fail(f"{e}\nitkd logged meanwhile ({len(shown)} of {len(logged)} lines):\n  "
                             + "\n  ".join(shown)) from None
            raise
    scenario.__name__ = fn.__name__
    return scenario


def main():
    # meson's timeout (SIGTERM) becomes an exit, so that apt's policy file, MariaDB and itkd are cleaned up.
    signal.signal(signal.SIGTERM, h._on_term)
    reason = h.skip_reason()
    if reason is None:
        reason = ensure_packages()
    if reason is not None:
        required = os.environ.get("ITK_NSPAWN_REQUIRE") == "1" or os.environ.get("ITK_APPS_REQUIRE") == "1"
        print(f"1..{len(SCENARIOS)}", flush=True)
        for k, fn in enumerate(SCENARIOS, 1):
            if required:
                print(f"not ok {k} - {h.scenario_name(fn)}", flush=True)
                diag(f"cannot run, and ITK_NSPAWN_REQUIRE=1/ITK_APPS_REQUIRE=1 forbid skipping: {reason}")
            else:
                print(f"ok {k} - {h.scenario_name(fn)} # SKIP {reason}", flush=True)
        return 1 if required else 0
    start = time.monotonic()
    status = h.run([with_log(fn) for fn in SCENARIOS], setup)
    diag(f"suite ran in {time.monotonic() - start:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
