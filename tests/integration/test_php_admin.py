# PHPAdminValue, PHPAdminFlag, PHPValue, PHPFlag and PHPUserIni through itkd with php-cgi, as a FastCGI pool
# (a.test, uid 2001) and as a CGI Handler (b.test, uid 2002): what the tenant's .user.ini and ini_set() can and
# cannot change, as docs/configuration.md "PHP settings" states it, the same settings on a request that does
# not come through itk, a reload that changes a value, and refused lines with their file:line.

import functools
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PHP_CGI = "/usr/bin/php-cgi"
DISABLED = "exec,shell_exec,system,passthru,proc_open,popen"

# Prints what PHP was given, then what ini_set() does to each (name=new value), then what was denied.
INI_PHP = r"""<?php
header('Content-Type: text/plain');
$names = ['memory_limit', 'upload_max_filesize', 'post_max_size', 'open_basedir', 'disable_functions',
          'sendmail_path', 'max_execution_time', 'default_charset', 'display_errors', 'user_ini.filename'];
foreach ($names as $n) echo $n, '=', ini_get($n), "\n";
$tries = ['memory_limit' => '512M', 'open_basedir' => '/', 'max_execution_time' => '99', 'default_charset' => 'ISO-8859-1',
          'display_errors' => '1'];
foreach ($tries as $n => $v) {
  $old = @ini_set($n, $v);
  echo 'set.', $n, '=', $old === false ? 'refused' : 'changed', ' now ', ini_get($n), "\n";
}
// open_basedir may still be narrowed at run time unless locked; never widened.
echo 'narrow=', @ini_set('open_basedir', __DIR__) === false ? 'refused' : 'changed', "\n";
echo 'exec=', function_exists('exec') ? 'yes' : 'no', "\n";
echo 'etc=', @file_get_contents('/etc/hostname') === false ? 'denied' : 'read', "\n";
"""

# The tenant tries to lift every limit itself.
USER_INI = """memory_limit = 1G
upload_max_filesize = 1G
post_max_size = 1G
open_basedir = /
disable_functions =
sendmail_path = /bin/true
max_execution_time = 23
default_charset = KOI8-R
display_errors = On
"""


def php_lines(root, temp_dir_of):
    return [
        "PHPAdminValue = memory_limit 64M",
        f"PHPAdminValue = disable_functions {DISABLED}",
        f"PHPAdminValue = open_basedir {root}:{temp_dir_of}",
        "PHPAdminValue = upload_max_filesize 3M",
        "PHPAdminValue = sendmail_path /usr/sbin/sendmail -t -i -f web@example.test",
        "PHPAdminFlag = display_errors off",
        "PHPValue = max_execution_time 17",
        "PHPValue = default_charset UTF-8",
    ]


def requires_php(fn):
    @functools.wraps(fn)
    def wrapper(d):
        if not os.access(PHP_CGI, os.X_OK):
            raise h.Skip(f"{PHP_CGI} not installed (apt-get install php-cgi)")
        return fn(d)
    return wrapper


def setup():
    if not os.access(PHP_CGI, os.X_OK):
        return None
    tree = h.Tree(prefix="itk-phpadm-")
    tree.write_server_conf()
    d = h.Daemon(tree)
    d.roots = {}
    for name, uid, run, extra in (("a", h.UID_A, f"FastCGI = .php {PHP_CGI}", []),
                                  ("b", h.UID_B, f"Handler = .php {PHP_CGI}", []),
                                  ("c", h.UID_B, f"FastCGI = .php {PHP_CGI}", ["PHPUserIni = no"])):
        root = h.make_tenant(tree, name, uid)
        d.roots[name] = root
        tree.write(os.path.join(root, "ini.php"), INI_PHP, uid)
        tree.write(os.path.join(root, "sub", "ini.php"), INI_PHP, uid)
        tree.write(os.path.join(root, ".user.ini"), USER_INI, uid)
        lines = ["[vhost]", f"ServerName = {name}.test", f"DocumentRoot = {root}", f"AssignUserID = #{uid} #{uid}",
                 run, "DenyDotFiles = yes", *php_lines(root, d.temp_dir(f"{name}.test")), *extra]
        tree.write_dropin(f"{name}.conf", "\n".join(lines) + "\n")
    return d.start()


def get_ini(d, host, path="/ini.php"):
    resp = h.fetch(d.port, path, host, timeout=15)
    h.expect_status(resp, 200, f"GET {path} on {host}")
    return h.key_values(resp.body)


def expect_admin_values_hold(kv, root, temp_dir, what):
    h.expect_eq(kv.get("memory_limit"), "64M", f"{what}: memory_limit (PHP_INI_ALL) over .user.ini's 1G")
    h.expect_eq(kv.get("upload_max_filesize"), "3M", f"{what}: upload_max_filesize (PHP_INI_PERDIR) over .user.ini")
    h.expect_eq(kv.get("open_basedir"), f"{root}:{temp_dir}", f"{what}: open_basedir over .user.ini's /")
    h.expect_eq(kv.get("disable_functions"), DISABLED, f"{what}: disable_functions (PHP_INI_SYSTEM)")
    h.expect_eq(kv.get("sendmail_path"), "/usr/sbin/sendmail -t -i -f web@example.test", f"{what}: sendmail_path")
    h.expect_eq(kv.get("display_errors"), "", f"{what}: display_errors (PHPAdminFlag off) over .user.ini's On")
    h.expect_eq(kv.get("exec"), "no", f"{what}: exec() exists although disabled")
    h.expect_eq(kv.get("etc"), "denied", f"{what}: /etc/hostname read despite open_basedir")
    for n in ("memory_limit", "open_basedir", "display_errors"):
        h.check(kv.get(f"set.{n}", "").startswith("refused"), f"{what}: ini_set('{n}') was not refused: {kv.get('set.' + n)}")
    h.expect_eq(kv.get("narrow"), "refused", f"{what}: narrowing a locked open_basedir")
    h.expect_eq(kv.get("memory_limit"), "64M", f"{what}: memory_limit after ini_set")


@requires_php
def admin_values_hold_in_a_fastcgi_pool(d):
    for path in ("/ini.php", "/sub/ini.php"):
        kv = get_ini(d, "a.test", path)
        expect_admin_values_hold(kv, d.roots["a"], d.temp_dir("a.test"), f"a.test (FastCGI) {path}")
        # PHPValue: a default the tenant may change, by .user.ini and by ini_set() where PHP allows it.
        h.expect_eq(kv.get("max_execution_time"), "23", f"a.test {path}: PHPValue max_execution_time under .user.ini")
        h.expect_eq(kv.get("default_charset"), "KOI8-R", f"a.test {path}: PHPValue default_charset under .user.ini")
        h.expect_eq(kv.get("set.max_execution_time"), "changed now 99", f"a.test {path}: ini_set of a PHPValue")


@requires_php
def admin_values_hold_in_a_cgi_handler(d):
    kv = get_ini(d, "b.test")
    expect_admin_values_hold(kv, d.roots["b"], d.temp_dir("b.test"), "b.test (Handler)")
    h.expect_eq(kv.get("max_execution_time"), "23", "b.test: PHPValue max_execution_time under .user.ini")


@requires_php
def php_user_ini_no_ignores_the_tenants_file(d):
    kv = get_ini(d, "c.test")
    expect_admin_values_hold(kv, d.roots["c"], d.temp_dir("c.test"), "c.test (PHPUserIni = no)")
    h.expect_eq(kv.get("user_ini.filename"), "", "c.test: user_ini.filename")
    h.expect_eq(kv.get("max_execution_time"), "17", "c.test: PHPValue with .user.ini not read")
    h.expect_eq(kv.get("default_charset"), "UTF-8", "c.test: PHPValue default_charset with .user.ini not read")


@requires_php
def the_tenant_cannot_write_its_settings(d):
    ini_dir = os.path.join(d.runtime, "php", "a.test")
    admin = os.path.join(ini_dir, "admin", "vhost.ini")
    st = os.stat(admin)
    h.expect_eq((st.st_uid, st.st_mode & 0o7777), (0, 0o644), f"{admin}: owner and mode")
    h.expect_eq(os.stat(os.path.dirname(admin)).st_uid, 0, "the admin ini directory's owner")
    text = open(admin).read()
    h.check("[HOST=a.test]" in text and "memory_limit = 64M" in text, f"{admin} holds:\n{text}")
    # As the tenant: neither the file nor a new one beside it.
    probe = ("import sys\nfor p in sys.argv[1:]:\n  try:\n    open(p, 'a').close(); print('wrote', p)\n"
             "  except OSError: pass\n")
    r = subprocess.run(["python3", "-c", probe, admin, os.path.join(ini_dir, "admin", "zz.ini"),
                        os.path.join(ini_dir, "zz.ini")], user=h.UID_A, group=h.UID_A, extra_groups=[],
                       capture_output=True, text=True, timeout=10)
    h.expect_eq(r.stdout, "", "what the tenant could write in its PHP ini directory")


@requires_php
def outside_itk_only_the_plain_lines_hold(d):
    # php-cgi as the tenant with the pool's environment but another SERVER_NAME (what a tenant's own
    # FastCGI request to its pool socket could say): no [HOST=] section applies, so only what PHP itself
    # fixes holds: PHP_INI_SYSTEM values and open_basedir (which can only narrow); the rest is the tenant's.
    root = d.roots["a"]
    env = {"PATH": "/usr/bin:/bin", "REDIRECT_STATUS": "200", "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
           "SERVER_NAME": "forged.test", "SCRIPT_FILENAME": os.path.join(root, "ini.php"), "DOCUMENT_ROOT": root,
           "PHP_INI_SCAN_DIR": f"{d.runtime}/php/a.test::{d.runtime}/php/a.test/admin"}
    r = subprocess.run([PHP_CGI], env=env, cwd="/", user=h.UID_A, group=h.UID_A, extra_groups=[],
                       capture_output=True, timeout=15)
    kv = h.key_values(r.stdout)
    h.expect_eq(kv.get("disable_functions"), DISABLED, "forged SERVER_NAME: disable_functions")
    h.expect_eq(kv.get("exec"), "no", "forged SERVER_NAME: exec()")
    h.expect_eq(kv.get("open_basedir"), f"{root}:{d.temp_dir('a.test')}", "forged SERVER_NAME: open_basedir")
    h.expect_eq(kv.get("etc"), "denied", "forged SERVER_NAME: /etc/hostname")
    h.expect_eq(kv.get("sendmail_path"), "/usr/sbin/sendmail -t -i -f web@example.test", "forged: sendmail_path")
    h.expect_eq(kv.get("narrow"), "changed", "forged SERVER_NAME: narrowing open_basedir")
    # Documented as not held there: PHP_INI_PERDIR and PHP_INI_ALL values follow .user.ini and ini_set().
    h.expect_eq(kv.get("memory_limit"), "1G", "forged SERVER_NAME: memory_limit (documented as the tenant's)")
    h.expect_eq(kv.get("upload_max_filesize"), "1G", "forged SERVER_NAME: upload_max_filesize (documented)")


@requires_php
def reload_applies_a_changed_value(d):
    conf = os.path.join(d.tree.conf_dir, "a.conf")
    text = open(conf).read()
    with open(conf, "w") as f:
        f.write(text.replace("PHPAdminValue = memory_limit 64M", "PHPAdminValue = memory_limit 48M"))
    try:
        d.reload()
        kv = h.wait_until(lambda: (lambda k: k if k.get("memory_limit") == "48M" else None)(get_ini(d, "a.test")), 5)
        h.check(kv, "a.test still serves memory_limit 64M after a reload that set 48M")
        h.expect_eq(kv.get("set.memory_limit", "").startswith("refused"), True, "ini_set after the reload")
    finally:
        with open(conf, "w") as f:
            f.write(text)
        d.reload()


@requires_php
def bad_lines_are_refused_with_file_and_line(d):
    tree = h.Tree(prefix="itk-phpadm-bad-")
    tree.write_server_conf()
    root = h.make_tenant(tree, "x", h.UID_A)
    tree.write_dropin("x.conf", "\n".join([
        "[vhost]", "ServerName = x.test", f"DocumentRoot = {root}", f"AssignUserID = #{h.UID_A} #{h.UID_A}",
        "PHPAdminValue = open_basedir \"/srv\"",            # 5
        "PHPAdminValue = memory_limit=1G",                  # 6
        "PHPAdminValue = include_path ${HOME}",             # 7
        "PHPAdminFlag = engine perhaps",                    # 8
    ]) + "\n")
    rc, _, err = h.run_itkd_direct(["--check", "--config", tree.conf, "--config-dir", tree.conf_dir])
    h.expect_eq(rc, 1, f"itkd --check exit status (stderr: {err})")
    path = os.path.join(tree.conf_dir, "x.conf")
    for line, key in ((5, "PHPAdminValue"), (6, "PHPAdminValue"), (7, "PHPAdminValue"), (8, "PHPAdminFlag")):
        h.check(f"{path}:{line}: {key}: " in err, f"expected an error at {path}:{line} for {key}, got:\n{err}")


SCENARIOS = [
    admin_values_hold_in_a_fastcgi_pool,
    admin_values_hold_in_a_cgi_handler,
    php_user_ini_no_ignores_the_tenants_file,
    the_tenant_cannot_write_its_settings,
    outside_itk_only_the_plain_lines_hold,
    reload_applies_a_changed_value,
    bad_lines_are_refused_with_file_and_line,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)
