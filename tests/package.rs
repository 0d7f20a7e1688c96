//! The Debian package (docs/packaging.md), built with cargo-deb and installed
//! for real: what it holds, what installing, reinstalling, removing and
//! purging it do, and the installed daemon run as an unprivileged user.
//!
//! It installs system-wide, so it needs root, dpkg and cargo-deb, and a host
//! without contact-verifier installed. When one of them is missing it prints
//! why and passes, unless `CV_REQUIRE_PACKAGE` is set (.ci/run sets it): then
//! it fails. It purges the package when it ends, passed or failed; a run
//! that was killed is cleaned up by the next one (see `LEFTOVER_MARKER`).
//!
//! The .deb packs the debug build `cargo test` made (`cargo deb --no-build`
//! pointed at a copy of it), not a release build: everything but the
//! binary's optimisation is what `debian/build-deb.sh` ships.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use contact_verifier::cli::Cli;

const PKG: &str = "contact-verifier";
const CONF_DIR: &str = "/etc/contact-verifier";
const CONFFILE: &str = "/etc/contact-verifier/contact-verifier.toml";
const SECRET: &str = "/etc/contact-verifier/secret";
const BIN: &str = "/usr/bin/contact-verifier";
const UNIT_DIR: &str = "/usr/lib/systemd/system";
const UNITS: [&str; 3] = [
    "contact-verifier.service",
    "contact-verifier-sweep.service",
    "contact-verifier-sweep.timer",
];
/// The symlink `systemctl enable contact-verifier` makes.
const DAEMON_WANTS: &str = "/etc/systemd/system/multi-user.target.wants/contact-verifier.service";
const MAN_DIR: &str = "/usr/share/man/man1";
const BASH_COMPLETION: &str = "/usr/share/bash-completion/completions/contact-verifier";
const ZSH_COMPLETION: &str = "/usr/share/zsh/vendor-completions/_contact-verifier";
const FISH_COMPLETION: &str = "/usr/share/fish/vendor_completions.d/contact-verifier.fish";
/// Where systemd's StateDirectory= with DynamicUser= keeps the database.
const STATE_LINK: &str = "/var/lib/contact-verifier";
const STATE_PRIVATE: &str = "/var/lib/private/contact-verifier";
/// Written before the first `dpkg -i`, removed after the purge: a run that
/// finds it was killed half-way, and purges what it left.
const LEFTOVER_MARKER: &str = "/var/tmp/contact-verifier-package-test.installed";
/// Serializes runs of this test on one host (it installs system-wide).
const LOCK: &str = "/var/tmp/contact-verifier-package-test.lock";
const NOBODY: u32 = 65534;

fn required() -> bool {
    std::env::var_os("CV_REQUIRE_PACKAGE").is_some_and(|v| !v.is_empty())
}

/// Prints why the test cannot run here; fails when it is required.
fn skip(reason: &str) {
    if required() {
        panic!("CV_REQUIRE_PACKAGE is set but the package test cannot run: {reason}");
    }
    println!("SKIPPED tests/package.rs: {reason} (set CV_REQUIRE_PACKAGE=1 to fail instead)");
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with no standard input; panics with its output unless it exits 0.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        describe(cmd),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn stdout_of(cmd: &mut Command) -> String {
    text(&run(cmd).stdout)
}

fn dpkg(args: &[&str]) -> Output {
    let mut cmd = Command::new("dpkg");
    cmd.args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env_remove("DEBCONF_NONINTERACTIVE_SEEN");
    run(&mut cmd)
}

/// dpkg's status of the package: "ii " installed, "rc " removed with its
/// configuration, None when dpkg does not know it (never installed, purged).
fn dpkg_status() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", PKG])
        .stdin(Stdio::null())
        .output()
        .expect("dpkg-query");
    let status = text(&out.stdout);
    (out.status.success() && !status.trim().is_empty() && !status.starts_with("un"))
        .then_some(status)
}

fn exists(path: &str) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn mode(path: &str) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every command of the CLI as its words after the binary, the binary's own
/// (empty) path included: the pages the package must have.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            if sub.get_name() == "help" {
                continue;
            }
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
        out.push(path);
    }
    let mut out = Vec::new();
    walk(&Cli::command(), Vec::new(), &mut out);
    out
}

fn page_name(path: &[String]) -> String {
    std::iter::once(PKG.to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join("-")
}

fn find_command<'a>(root: &'a clap::Command, path: &[String]) -> &'a clap::Command {
    path.iter().fold(root, |cmd, name| {
        cmd.find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"))
    })
}

/// Holds the host-wide lock for the test's lifetime (flock on LOCK).
struct HostLock {
    _file: fs::File,
}

impl HostLock {
    fn take() -> HostLock {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)
            .unwrap_or_else(|e| panic!("{LOCK}: {e}"));
        // SAFETY: flock on a descriptor this struct owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {LOCK}: {}", std::io::Error::last_os_error());
        HostLock { _file: file }
    }
}

/// Purges the package and removes what the test made, whether the test
/// passed or panicked.
struct Cleanup {
    made: Vec<PathBuf>,
    made_private_dir: bool,
}

impl Cleanup {
    fn purge_everything(&mut self) {
        if dpkg_status().is_some() {
            let out = Command::new("dpkg")
                .args(["--purge", PKG])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .output();
            if let Ok(out) = out {
                if !out.status.success() {
                    eprintln!(
                        "cleanup: dpkg --purge failed:\n{}{}",
                        text(&out.stdout),
                        text(&out.stderr)
                    );
                }
            }
        }
        for path in self.made.drain(..).rev() {
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
        let _ = fs::remove_file(STATE_LINK);
        let _ = fs::remove_dir_all(STATE_PRIVATE);
        if self.made_private_dir {
            let _ = fs::remove_dir("/var/lib/private");
        }
        // What the operator's files of the purge step leave behind.
        let _ = fs::remove_file(format!("{CONF_DIR}/api-token"));
        let _ = fs::remove_dir(CONF_DIR);
        let _ = fs::remove_file(LEFTOVER_MARKER);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.purge_everything();
    }
}

/// Why this host cannot run the test, if it cannot.
fn unsuitable() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (dpkg -i needs it)".into());
    }
    for tool in [
        "dpkg",
        "dpkg-deb",
        "dpkg-query",
        "man",
        "bash",
        "setpriv",
        "gzip",
        "systemd-analyze",
        "systemctl",
    ] {
        if !have(tool) {
            return Some(format!("{tool} is missing"));
        }
    }
    // Minimal images tell dpkg to leave out man pages and docs; the package
    // would install without them.
    if let Ok(entries) = fs::read_dir("/etc/dpkg/dpkg.cfg.d") {
        for entry in entries.flatten() {
            let conf = fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(line) = conf.lines().find(|l| {
                l.trim_start().starts_with("path-exclude")
                    && (l.contains("/usr/share/man") || l.contains("/usr/share/bash-completion"))
            }) {
                return Some(format!(
                    "dpkg leaves out files the package ships: {line:?} in {}",
                    entry.path().display()
                ));
            }
        }
    }
    let cargo_deb = Command::new(cargo())
        .args(["deb", "--version"])
        .stdin(Stdio::null())
        .output();
    if !cargo_deb.is_ok_and(|o| o.status.success()) {
        return Some("cargo-deb is missing (cargo install --locked cargo-deb)".into());
    }
    None
}

/// Refuses to touch a host where contact-verifier is installed (by dpkg or
/// by hand): the test's purge would delete its secret.
fn host_in_use() -> Option<String> {
    if let Some(status) = dpkg_status() {
        return Some(format!("dpkg has {PKG} as {:?}", status.trim()));
    }
    [CONF_DIR, BIN, STATE_LINK, STATE_PRIVATE]
        .into_iter()
        .find(|p| exists(p))
        .map(|p| format!("{p} exists (contact-verifier installed by hand?)"))
}

#[test]
fn debian_package_builds_installs_runs_and_purges() {
    if let Some(reason) = unsuitable() {
        return skip(&reason);
    }
    let _lock = HostLock::take();
    let mut cleanup = Cleanup {
        made: Vec::new(),
        made_private_dir: false,
    };
    if exists(LEFTOVER_MARKER) {
        println!("a previous run of this test was killed half-way: purging what it left");
        cleanup.purge_everything();
    }
    if let Some(reason) = host_in_use() {
        // Nothing of ours to clean up: leave the host as it is.
        std::mem::forget(cleanup);
        return skip(&reason);
    }
    let started = Instant::now();

    let deb = build_deb(&mut cleanup);
    let built = started.elapsed();
    inspect_deb(&deb);

    fs::write(LEFTOVER_MARKER, b"tests/package.rs\n").unwrap();
    let first = Instant::now();
    let out = dpkg(&["--install", deb.to_str().unwrap()]);
    let install_time = first.elapsed();
    assert_eq!(dpkg_status().as_deref(), Some("ii "));
    assert!(
        text(&out.stdout).contains("created the link-signing secret"),
        "postinst did not report the secret:\n{}",
        text(&out.stdout)
    );

    check_installed_files();
    check_binary_man_and_completion();
    check_units();
    let secret = check_secret();
    // The operator enables the daemon (systemctl works offline too): the
    // package keeps that through reinstalls and upgrades.
    run(Command::new("systemctl").args(["enable", "contact-verifier.service"]));
    assert!(
        exists(DAEMON_WANTS),
        "systemctl enable made no {DAEMON_WANTS}"
    );

    // An operator's edit of the conffile (the relay), then the same package
    // again: the edit and the secret survive.
    let conf = fs::read_to_string(CONFFILE).unwrap();
    assert_eq!(
        conf.matches("host = \"127.0.0.1\"").count(),
        1,
        "the shipped configuration changed: adapt the edit below"
    );
    let edited = conf.replace("host = \"127.0.0.1\"", "host = \"relay.example.net\"");
    fs::write(CONFFILE, &edited).unwrap();
    let secret_mtime = fs::metadata(SECRET).unwrap().mtime();
    let out = dpkg(&["--install", "--force-confold", deb.to_str().unwrap()]);
    assert!(
        !text(&out.stdout).contains("created the link-signing secret"),
        "the reinstall made a new secret:\n{}",
        text(&out.stdout)
    );
    assert_eq!(dpkg_status().as_deref(), Some("ii "));
    assert!(exists(DAEMON_WANTS), "reinstall disabled the daemon");
    assert_eq!(
        fs::read(SECRET).unwrap(),
        secret,
        "reinstall changed the secret"
    );
    assert_eq!(fs::metadata(SECRET).unwrap().mtime(), secret_mtime);
    assert_eq!(mode(SECRET), 0o600);
    assert_eq!(
        fs::read_to_string(CONFFILE).unwrap(),
        edited,
        "reinstall lost the edit of the conffile"
    );

    run_as_unprivileged_user(&secret, &mut cleanup);

    // The state systemd's StateDirectory= would have made at the first start.
    if !exists("/var/lib/private") {
        fs::create_dir("/var/lib/private").unwrap();
        fs::set_permissions("/var/lib/private", fs::Permissions::from_mode(0o700)).unwrap();
        cleanup.made_private_dir = true;
    }
    fs::create_dir(STATE_PRIVATE).unwrap();
    fs::write(format!("{STATE_PRIVATE}/contact-verifier.db"), b"evidence").unwrap();
    std::os::unix::fs::symlink("private/contact-verifier", STATE_LINK).unwrap();

    check_remove_and_purge(&edited, &secret);
    cleanup.purge_everything();
    println!(
        "package test: .deb built in {:.1}s, first dpkg -i {:.1}s, whole test {:.1}s",
        built.as_secs_f64(),
        install_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Generates the packaging files with the contact-verifier-docs that `cargo
/// test` built, and packs the contact-verifier it built with them: copied
/// to where `cargo deb --no-build` looks for a release build, in a target
/// directory of its own, so nothing is compiled again.
fn build_deb(cleanup: &mut Cleanup) -> PathBuf {
    let packaging = repo().join("target/packaging");
    run(Command::new(env!("CARGO_BIN_EXE_contact-verifier-docs"))
        .arg("package")
        .arg(&packaging)
        .stdout(Stdio::null()));
    let target = repo().join("target/package-test");
    let _ = fs::remove_dir_all(&target);
    fs::create_dir_all(target.join("release")).unwrap();
    cleanup.made.push(target.clone());
    fs::copy(
        env!("CARGO_BIN_EXE_contact-verifier"),
        target.join("release/contact-verifier"),
    )
    .unwrap();
    let out_dir = tempfile::Builder::new()
        .prefix("cv-deb-")
        .tempdir()
        .unwrap()
        .keep();
    cleanup.made.push(out_dir.clone());
    let t = Instant::now();
    run(Command::new(cargo())
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", &target)
        .args(["deb", "--no-build", "--fast", "-o"])
        .arg(&out_dir));
    println!("cargo deb --no-build: {:.1}s", t.elapsed().as_secs_f64());
    let debs: Vec<PathBuf> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "expected one .deb in {}", out_dir.display());
    debs.into_iter().next().unwrap()
}

/// What `dpkg-deb` shows: the fields, every file with its mode and owner,
/// the conffiles and the maintainer scripts.
fn inspect_deb(deb: &Path) {
    let deb_s = deb.to_str().unwrap();
    let field = |name: &str| {
        stdout_of(Command::new("dpkg-deb").args(["-f", deb_s, name]))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), PKG);
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    assert!(!field("Maintainer").is_empty());

    // Lines like: -rwxr-xr-x 0/0 21155696 2026-11-30 00:00 ./usr/bin/contact-verifier
    let listing = stdout_of(Command::new("dpkg-deb").args(["-c", deb_s]));
    let mut files = std::collections::BTreeMap::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols.len() >= 6, "unexpected dpkg-deb -c line: {line}");
        assert_eq!(cols[1], "0/0", "not owned by root: {line}");
        let path = cols[5].trim_start_matches('.').to_string();
        if cols[0].starts_with('-') {
            files.insert(path, cols[0].to_string());
        } else {
            assert!(cols[0].starts_with('d'), "not a file or directory: {line}");
        }
    }
    let expect_mode = |path: &str, want: &str| {
        assert_eq!(
            files.get(path).map(String::as_str),
            Some(want),
            "{path} in the package\n{listing}"
        );
    };
    expect_mode(BIN, "-rwxr-xr-x");
    expect_mode(CONFFILE, "-rw-r--r--");
    for unit in UNITS {
        expect_mode(&format!("{UNIT_DIR}/{unit}"), "-rw-r--r--");
    }
    for completion in [BASH_COMPLETION, ZSH_COMPLETION, FISH_COMPLETION] {
        expect_mode(completion, "-rw-r--r--");
    }
    expect_mode("/usr/share/doc/contact-verifier/copyright", "-rw-r--r--");
    expect_mode(
        "/usr/share/doc/contact-verifier/docs/packaging.md",
        "-rw-r--r--",
    );
    // One page per command, gzip'd, and no other.
    let pages: BTreeSet<String> = files
        .keys()
        .filter(|p| p.starts_with(MAN_DIR))
        .cloned()
        .collect();
    let want: BTreeSet<String> = command_paths()
        .iter()
        .map(|p| format!("{MAN_DIR}/{}.1.gz", page_name(p)))
        .collect();
    assert_eq!(pages, want, "the man pages in the package");
    assert!(pages.contains(&format!("{MAN_DIR}/contact-verifier-contact-add.1.gz")));
    for page in &pages {
        expect_mode(page, "-rw-r--r--");
    }
    // Nothing the package must not ship: no secret (postinst makes it), no
    // state, no generator.
    for path in files.keys() {
        assert!(
            !path.starts_with("/var/") && path != SECRET && !path.contains("contact-verifier-docs"),
            "{path} should not be in the package"
        );
    }
    let under_etc: Vec<&String> = files.keys().filter(|p| p.starts_with("/etc/")).collect();
    assert_eq!(under_etc, [CONFFILE], "files under /etc");

    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .args(["-e", deb_s])
        .arg(control.path().join("DEBIAN")));
    let control = control.path().join("DEBIAN");
    assert_eq!(
        fs::read_to_string(control.join("conffiles")).unwrap(),
        format!("{CONFFILE}\n")
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        let body = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert_eq!(mode(path.to_str().unwrap()), 0o755, "{script}");
        assert!(body.starts_with("#!/bin/sh\n"), "{script}: {body}");
        assert!(body.contains("\nset -e\n"), "{script} without set -e");
        assert!(!body.contains("#DEBHELPER#"), "{script} kept #DEBHELPER#");
        run(Command::new("sh").arg("-n").arg(&path));
        // Every systemctl and deb-systemd-invoke waits for a running systemd.
        for line in body.lines().filter(|l| {
            let l = l.trim_start();
            l.starts_with("systemctl") || l.starts_with("deb-systemd-invoke")
        }) {
            let at = body.find(line).unwrap();
            let before = &body[..at];
            let guard = before.rfind("if [ -d /run/systemd/system ]");
            let fi = before.rfind("\nfi");
            assert!(
                guard.is_some_and(|g| fi.is_none_or(|f| f < g)),
                "{script}: `{}` is not guarded by [ -d /run/systemd/system ]",
                line.trim()
            );
        }
    }
    let postinst = fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("deb-systemd-helper"), "{postinst}");
    assert!(
        postinst.contains("try-restart contact-verifier.service"),
        "{postinst}"
    );
    let postrm = fs::read_to_string(control.join("postrm")).unwrap();
    assert!(postrm.contains("deb-systemd-helper purge"), "{postrm}");
}

fn check_installed_files() {
    assert_eq!(mode(BIN), 0o755);
    assert_eq!(mode(CONFFILE), 0o644);
    assert_eq!(mode(CONF_DIR), 0o755);
    for unit in UNITS {
        let path = format!("{UNIT_DIR}/{unit}");
        let body = fs::read_to_string(&path).unwrap();
        if unit.ends_with(".service") {
            assert!(
                body.contains(&format!("\nExecStart={BIN} --config {CONFFILE} ")),
                "{path}: ExecStart"
            );
        }
        assert!(!body.contains("/usr/local/bin"), "{path}");
    }
    // Installed, not enabled, not started (no systemd running here anyway).
    for unit in UNITS {
        assert!(
            !exists(&format!(
                "/etc/systemd/system/multi-user.target.wants/{unit}"
            )) && !exists(&format!("/etc/systemd/system/timers.target.wants/{unit}")),
            "{unit} was enabled at installation"
        );
    }
    // Only what postinst creates: the secret. The optional credentials are
    // the operator's.
    for optional in ["smtp-password", "api-token"] {
        assert!(!exists(&format!("{CONF_DIR}/{optional}")), "{optional}");
    }
}

fn check_binary_man_and_completion() {
    let version = stdout_of(Command::new(BIN).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("contact-verifier {}", env!("CARGO_PKG_VERSION"))
    );

    // `man contact-verifier` through the normal search path, then every page
    // by file: each shows its command's description and every long option,
    // as --help does.
    let man = |args: &[&str]| {
        stdout_of(
            Command::new("man")
                .args(args)
                .env("MANWIDTH", "1000")
                .env("MANPAGER", "cat")
                .env("LC_ALL", "C")
                .env_remove("MANPATH"),
        )
    };
    let main_page = man(&[PKG]);
    for section in ["NAME", "SYNOPSIS", "SUBCOMMANDS", "FILES", "EXIT STATUS"] {
        assert!(
            main_page.contains(section),
            "man {PKG}: no {section}\n{main_page}"
        );
    }
    assert!(
        main_page.contains("contact-verifier-contact(1)"),
        "{main_page}"
    );
    let root = Cli::command();
    for path in command_paths() {
        let page = format!("{MAN_DIR}/{}.1.gz", page_name(&path));
        let rendered = collapse_spaces(&man(&["-l", &page]));
        let cmd = find_command(&root, &path);
        if let Some(about) = cmd.get_about() {
            let about = collapse_spaces(&about.to_string());
            assert!(
                rendered.contains(about.trim_end_matches('.')),
                "{page} lacks {about:?}:\n{rendered}"
            );
        }
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    rendered.contains(&format!("--{long}")),
                    "{page} lacks --{long}:\n{rendered}"
                );
            }
        }
        // The same command's --help: the man page was made from it.
        let mut help = Command::new(BIN);
        help.args(&path).arg("--help");
        let help = stdout_of(&mut help);
        assert!(help.contains("Usage: contact-verifier"), "{help}");
    }

    // bash loads the completion and completes subcommands and their options.
    let script = format!(
        r#"source {BASH_COMPLETION}
complete -p contact-verifier
f=$(complete -p contact-verifier | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDS=(contact-verifier con); COMP_CWORD=1
"$f" contact-verifier con contact-verifier; echo "top: ${{COMPREPLY[*]}}"
COMP_WORDS=(contact-verifier contact add --e); COMP_CWORD=3
"$f" contact-verifier --e add; echo "contact add: ${{COMPREPLY[*]}}"
"#
    );
    let out = stdout_of(Command::new("bash").args(["--norc", "--noprofile", "-c", &script]));
    assert!(out.contains("complete -"), "{out}");
    assert!(out.contains(" contact-verifier\n"), "{out}");
    assert!(out.contains("top: contact\n"), "{out}");
    assert!(
        out.contains("contact add: --external-id --email\n"),
        "bash does not complete a subcommand's options:\n{out}"
    );
    // zsh and fish, where they are installed, at least parse theirs.
    if have("zsh") {
        run(Command::new("zsh").args(["-n", ZSH_COMPLETION]));
    }
    if have("fish") {
        run(Command::new("fish").args(["--no-execute", FISH_COMPLETION]));
    }
}

fn check_units() {
    let out = stdout_of(
        Command::new("bash")
            .arg(repo().join("systemd/verify.sh"))
            .args(["--packaged", UNIT_DIR]),
    );
    assert!(out.contains("OK:"), "{out}");
    assert!(out.contains(&format!("ExecStart binary: {BIN}")), "{out}");
}

/// The secret postinst made: root's, 0600, 48 random bytes in base64.
fn check_secret() -> Vec<u8> {
    let meta = fs::metadata(SECRET).unwrap_or_else(|e| panic!("{SECRET}: {e}"));
    assert_eq!(mode(SECRET), 0o600);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    let secret = fs::read(SECRET).unwrap();
    let line = std::str::from_utf8(&secret).unwrap().trim_end();
    assert_eq!(line.len(), 64, "{line:?}");
    assert!(line
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
    let leftovers: Vec<_> = fs::read_dir(CONF_DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".secret"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    secret
}

/// The installed binary as `nobody`, with the installed configuration and a
/// fresh state directory (as the unit gives it one, the secret copied in as
/// systemd copies a credential): migrate, check-config, and `run` serving
/// /healthz until SIGTERM.
fn run_as_unprivileged_user(secret: &[u8], cleanup: &mut Cleanup) {
    let base = tempfile::Builder::new()
        .prefix("cv-package-")
        .tempdir()
        .unwrap()
        .keep();
    cleanup.made.push(base.clone());
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    let state = base.join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    let secret_copy = state.join("secret");
    fs::write(&secret_copy, secret).unwrap();
    fs::set_permissions(&secret_copy, fs::Permissions::from_mode(0o400)).unwrap();
    std::os::unix::fs::chown(&secret_copy, Some(NOBODY), Some(NOBODY)).unwrap();
    let db = state.join("contact-verifier.db");
    let port = free_port();
    let relay_port = free_port();

    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--no-new-privs",
            "--",
            BIN,
            "--config",
            CONFFILE,
        ])
        .args(args)
        .current_dir(&state)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env(
            "CONTACT_VERIFIER__DATABASE__URL",
            format!("sqlite://{}", db.display()),
        )
        .env(
            "CONTACT_VERIFIER__VERIFICATION__SECRET_FILE",
            secret_copy.to_str().unwrap(),
        )
        .env(
            "CONTACT_VERIFIER__HTTP__LISTEN",
            format!("127.0.0.1:{port}"),
        )
        // The edited conffile names a relay that does not exist here.
        .env("CONTACT_VERIFIER__SMTP__HOST", "127.0.0.1")
        .env("CONTACT_VERIFIER__SMTP__PORT", relay_port.to_string())
        .env("CONTACT_VERIFIER__SMTP__TLS", "none");
        cmd
    };

    let migrated: serde_json::Value =
        serde_json::from_str(&stdout_of(&mut as_nobody(&["migrate"]))).unwrap();
    assert!(
        migrated["applied"].as_u64().is_some_and(|n| n > 0),
        "{migrated}"
    );
    assert_eq!(fs::metadata(&db).unwrap().uid(), NOBODY);

    let config = stdout_of(&mut as_nobody(&["check-config"]));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["smtp"]["host"], "127.0.0.1", "{config}");
    let secret_text = String::from_utf8_lossy(secret);
    assert!(
        !config.to_string().contains(secret_text.trim()),
        "check-config printed the secret"
    );

    let log_path = base.join("run.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut daemon = as_nobody(&["run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the daemon as nobody");
    let health = wait_for_health(port, &mut daemon, &log_path);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"database\":\"ok\""), "{health}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let logs = fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.success(), "daemon exited with {status}:\n{logs}");
    assert!(logs.contains("daemon_started"), "{logs}");
    assert!(
        !logs.contains("email_sent"),
        "an empty database sent mail:\n{logs}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET /healthz until it answers (at most 30 s); the raw response.
fn wait_for_health(port: u16, daemon: &mut Child, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!(
                "the daemon exited with {status}:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = conn.write_all(
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let mut response = String::new();
            if conn.read_to_string(&mut response).is_ok() && !response.is_empty() {
                return response;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not answer:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `dpkg -r` keeps the configuration, the secret and the database; `dpkg -P`
/// removes the conffile and the secret, keeps files the operator added and
/// the database (docs/packaging.md).
fn check_remove_and_purge(edited_conf: &str, secret: &[u8]) {
    let out = dpkg(&["--remove", PKG]);
    assert_eq!(
        dpkg_status().as_deref(),
        Some("rc "),
        "{}",
        text(&out.stdout)
    );
    for gone in [
        BIN.to_string(),
        BASH_COMPLETION.to_string(),
        ZSH_COMPLETION.to_string(),
        FISH_COMPLETION.to_string(),
        format!("{MAN_DIR}/contact-verifier.1.gz"),
        format!("{MAN_DIR}/contact-verifier-contact-add.1.gz"),
    ]
    .into_iter()
    .chain(UNITS.iter().map(|u| format!("{UNIT_DIR}/{u}")))
    {
        assert!(!exists(&gone), "dpkg -r left {gone}");
    }
    assert_eq!(fs::read_to_string(CONFFILE).unwrap(), edited_conf);
    assert_eq!(fs::read(SECRET).unwrap(), secret);
    // debhelper's convention: the units of a removed package are masked
    // (their files are gone); the operator's enabling is kept for a
    // reinstall.
    for unit in ["contact-verifier.service", "contact-verifier-sweep.timer"] {
        let mask = format!("/etc/systemd/system/{unit}");
        assert_eq!(
            fs::read_link(&mask).ok(),
            Some(PathBuf::from("/dev/null")),
            "{mask} after dpkg -r"
        );
    }
    assert!(exists(DAEMON_WANTS), "dpkg -r disabled the daemon");
    assert_eq!(mode(SECRET), 0o600);
    assert!(exists(&format!("{STATE_PRIVATE}/contact-verifier.db")));

    // An operator's own file next to the package's.
    fs::write(format!("{CONF_DIR}/api-token"), b"operator's token\n").unwrap();
    let out = dpkg(&["--purge", PKG]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(dpkg_status(), None, "{said}");
    assert!(!exists(CONFFILE), "dpkg -P left the conffile");
    assert!(!exists(SECRET), "dpkg -P left the secret");
    let left: Vec<String> = fs::read_dir(CONF_DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["api-token"], "what dpkg -P left in {CONF_DIR}");
    assert!(said.contains("kept /etc/contact-verifier"), "{said}");
    assert!(
        exists(&format!("{STATE_PRIVATE}/contact-verifier.db")) && exists(STATE_LINK),
        "dpkg -P removed the database"
    );
    assert!(said.contains("kept the database"), "{said}");
    for unit in UNITS {
        assert!(
            !exists(&format!("/etc/systemd/system/{unit}")),
            "a mask of {unit} survived the purge"
        );
    }
    assert!(!exists(DAEMON_WANTS), "dpkg -P left the daemon enabled");
    fs::remove_file(format!("{CONF_DIR}/api-token")).unwrap();
    fs::remove_dir(CONF_DIR).unwrap();
}
