//! `contact-verifier-docs`: generates what the Debian package ships besides
//! the binary, from the product's own definitions. Not part of the product
//! (the package does not install it); see docs/packaging.md.
//!
//! - Man pages (`clap_mangen`) and bash, zsh and fish completions
//!   (`clap_complete`) from [`contact_verifier::cli::Cli`], the type that
//!   parses the command line, so they cannot drift from `--help`.
//! - The packaged copies of the systemd units: the files in `systemd/`
//!   (compiled in), with `ExecStart=` running `/usr/bin/contact-verifier`
//!   instead of `/usr/local/bin/contact-verifier`; nothing else changes.
//!
//! ```text
//! cargo run --bin contact-verifier-docs -- man target/man
//! cargo run --bin contact-verifier-docs -- completions target/completions
//! cargo run --bin contact-verifier-docs -- package target/packaging
//! cargo run --bin contact-verifier-docs -- openapi docs/openapi.json
//! ```
//!
//! - The OpenAPI 3.1 document of `/v1` (docs/http-api.md), as the daemon
//!   serves it at `GET /v1/openapi.json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode, Stdio};

use clap::{Command, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use contact_verifier::cli::Cli;
use contact_verifier::ErrorCode;

const BIN: &str = "contact-verifier";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the units in `systemd/` (the manual installation) run the binary.
const MANUAL_BIN: &str = "/usr/local/bin/contact-verifier";
/// Where the package installs it.
const PACKAGED_BIN: &str = "/usr/bin/contact-verifier";
const UNITS: [(&str, &str); 3] = [
    (
        "contact-verifier.service",
        include_str!("../../systemd/contact-verifier.service"),
    ),
    (
        "contact-verifier-sweep.service",
        include_str!("../../systemd/contact-verifier-sweep.service"),
    ),
    (
        "contact-verifier-sweep.timer",
        include_str!("../../systemd/contact-verifier-sweep.timer"),
    ),
];

/// Generates contact-verifier's man pages, shell completions and packaged
/// systemd units.
#[derive(Debug, Parser)]
#[command(name = "contact-verifier-docs", version)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// contact-verifier.1 and one page per subcommand (e.g.
    /// contact-verifier-contact-add.1), uncompressed, into DIR.
    Man { dir: PathBuf },
    /// contact-verifier.bash, _contact-verifier (zsh) and
    /// contact-verifier.fish into DIR.
    Completions { dir: PathBuf },
    /// Everything the Debian package ships from here, as Cargo.toml's
    /// [package.metadata.deb] expects it: DIR/man/*.1.gz (gzip -9n),
    /// DIR/completions/{contact-verifier,_contact-verifier,contact-verifier.fish}
    /// and DIR/systemd/*.{service,timer} (ExecStart=/usr/bin/contact-verifier).
    /// DIR is emptied first.
    Package { dir: PathBuf },
    /// The OpenAPI 3.1 document of /v1, as `GET /v1/openapi.json` serves
    /// it, into FILE (docs/openapi.json is the committed copy).
    Openapi { file: PathBuf },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.what {
        What::Man { dir } => write_all(dir, man_pages()),
        What::Completions { dir } => write_all(
            dir,
            completions()
                .into_iter()
                .map(|(shell, text)| (portable_completion_name(shell), text))
                .collect(),
        ),
        What::Package { dir } => package(dir),
        What::Openapi { file } => std::fs::write(file, contact_verifier::api::openapi_document())
            .map(|()| println!("{}", file.display()))
            .map_err(|e| format!("cannot write {}: {e}", file.display())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("contact-verifier-docs: {e}");
            ExitCode::FAILURE
        }
    }
}

type Files = Vec<(String, Vec<u8>)>;

fn write_all(dir: &Path, files: Files) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, bytes) in files {
        let path = dir.join(&name);
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn package(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot empty {}: {e}", dir.display())),
    }
    let man = man_pages()
        .into_iter()
        .map(|(name, page)| Ok((format!("{name}.gz"), gzip(&page)?)))
        .collect::<Result<Files, String>>()?;
    write_all(&dir.join("man"), man)?;
    write_all(
        &dir.join("completions"),
        completions()
            .into_iter()
            .map(|(shell, text)| (debian_completion_name(shell), text))
            .collect(),
    )?;
    write_all(&dir.join("systemd"), packaged_units()?)
}

/// The units of `systemd/` as the package installs them.
fn packaged_units() -> Result<Files, String> {
    UNITS
        .iter()
        .map(|(name, text)| {
            if name.ends_with(".service") && !text.contains(&format!("ExecStart={MANUAL_BIN} ")) {
                return Err(format!(
                    "systemd/{name}: no ExecStart={MANUAL_BIN} to rewrite"
                ));
            }
            Ok((
                name.to_string(),
                text.replace(MANUAL_BIN, PACKAGED_BIN).into_bytes(),
            ))
        })
        .collect()
}

/// `gzip -9n`, as Debian policy wants man pages: no name or time stamp in
/// the header, so the same page gives the same bytes.
fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Process::new("gzip")
        .args(["-9n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().map_err(|e| format!("gzip: {e}"))?;
    writer
        .join()
        .expect("gzip writer thread")
        .map_err(|e| format!("cannot write to gzip: {e}"))?;
    if !out.status.success() {
        return Err(format!("gzip exited with {}", out.status));
    }
    Ok(out.stdout)
}

const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

fn completions() -> Vec<(Shell, Vec<u8>)> {
    SHELLS
        .iter()
        .map(|&shell| {
            let mut cmd = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, BIN, &mut out);
            if shell == Shell::Bash {
                out = fix_bash_hyphenated_bin(out);
            }
            (shell, out)
        })
        .collect()
}

/// clap_complete's bash script (4.6.12) spells the state of a subcommand
/// one way where it sets it (`contact__verifier__subcmd__contact`) and
/// another in the `case` arms that complete it
/// (`contact__subcmd__verifier__subcmd__contact`) when the binary's name has
/// a hyphen, so nothing after the first word would complete (clap-rs/clap
/// issue 6421). The arms are renamed to the spelling the script sets; a
/// fixed clap_complete makes this a no-op.
fn fix_bash_hyphenated_bin(script: Vec<u8>) -> Vec<u8> {
    let script = String::from_utf8(script).expect("clap_complete writes UTF-8");
    let set = BIN.replace('-', "__");
    let matched = BIN.replace('-', "__subcmd__");
    script.replace(&matched, &set).into_bytes()
}

/// The names `source` and `fpath` users expect from a generated file.
fn portable_completion_name(shell: Shell) -> String {
    match shell {
        Shell::Zsh => format!("_{BIN}"),
        _ => format!("{BIN}.{shell}"),
    }
}

/// The names under /usr/share/bash-completion/completions (looked up by
/// command name), /usr/share/zsh/vendor-completions and
/// /usr/share/fish/vendor_completions.d.
fn debian_completion_name(shell: Shell) -> String {
    match shell {
        Shell::Bash => BIN.to_string(),
        Shell::Zsh => format!("_{BIN}"),
        _ => format!("{BIN}.{shell}"),
    }
}

/// contact-verifier.1 and one page per subcommand at every level, named as
/// `man` looks them up: contact-verifier-contact.1,
/// contact-verifier-contact-add.1, ...
fn man_pages() -> Files {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    collect_pages(&root, None, &mut pages);
    pages
}

fn page_name(cmd: &Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

fn collect_pages(cmd: &Command, parent: Option<&str>, pages: &mut Files) {
    let name = page_name(cmd);
    let children: Vec<&Command> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("{BIN} {VERSION}"))
        .manual("contact-verifier manual");
    let mut page = Vec::new();
    man.render(&mut page)
        .expect("rendering into memory cannot fail");
    if parent.is_none() {
        page.extend_from_slice(main_page_sections().as_bytes());
    }
    // The subcommands' pages are listed under SUBCOMMANDS already.
    let mut see_also: Vec<String> = parent.into_iter().map(str::to_string).collect();
    if parent.is_some_and(|p| p != BIN) {
        see_also.push(BIN.to_string());
    }
    page.extend_from_slice(see_also_section(&see_also).as_bytes());
    pages.push((format!("{name}.1"), page));
    for child in children {
        collect_pages(child, Some(&name), pages);
    }
}

/// `-` is a hyphen in roff; names and options want the ASCII minus `\-`.
fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

fn see_also_section(pages: &[String]) -> String {
    let mut s = String::from(".SH \"SEE ALSO\"\n");
    if !pages.is_empty() {
        let refs: Vec<String> = pages
            .iter()
            .map(|p| format!("\\fB{}\\fR(1)", roff_escape(p)))
            .collect();
        s.push_str(&refs.join(",\n"));
        s.push_str("\n.PP\n");
    }
    s.push_str(
        "The reference documentation: /usr/share/doc/contact\\-verifier/ \
         (from the package) or docs/ in the source.\n",
    );
    s
}

/// FILES, ENVIRONMENT and EXIT STATUS of contact-verifier(1).
fn main_page_sections() -> String {
    let mut s = String::new();
    s.push_str(".SH FILES\n");
    for (path, what) in [
        (
            "/etc/contact\\-verifier/contact\\-verifier.toml",
            "The configuration the packaged units pass with \\fB\\-\\-config\\fR (a conffile).",
        ),
        (
            "/etc/contact\\-verifier/secret",
            "The link\\-signing secret, root\\-only (0600); the package creates it at \
             installation when it does not exist and never replaces it.",
        ),
        (
            "/etc/contact\\-verifier/smtp\\-password, /etc/contact\\-verifier/api\\-token",
            "Optional: the relay password and the bearer token of the /v1 API.",
        ),
        (
            "/var/lib/contact\\-verifier/contact\\-verifier.db",
            "The SQLite database of the systemd units.",
        ),
    ] {
        s.push_str(&format!(".TP\n{path}\n{what}\n"));
    }
    s.push_str(".SH ENVIRONMENT\n");
    for (var, what) in [
        (
            "CONTACT_VERIFIER_CONFIG",
            "The configuration file when \\fB\\-\\-config\\fR is not given.",
        ),
        (
            "CONTACT_VERIFIER__SECTION__KEY",
            "Overrides one configuration key, e.g. CONTACT_VERIFIER__SMTP__PORT=2525.",
        ),
        ("RUST_LOG", "Overrides log.level."),
    ] {
        s.push_str(&format!(".TP\n{}\n{what}\n", roff_escape(var)));
    }
    s.push_str(".SH \"EXIT STATUS\"\n");
    s.push_str(".TP\n0\nSuccess; the result, if any, is one JSON object on standard output.\n");
    for code in exit_codes() {
        s.push_str(&format!(
            ".TP\n{}\n{}: {}\n",
            code.exit_code(),
            code.as_str(),
            exit_meaning(code)
        ));
    }
    s
}

/// One code per exit status, in the order of the statuses.
fn exit_codes() -> Vec<ErrorCode> {
    let mut codes = vec![
        ErrorCode::Internal,
        ErrorCode::InvalidInput,
        ErrorCode::NotFound,
        ErrorCode::OperationLimitExceeded,
        ErrorCode::UnsupportedTLD,
        ErrorCode::Unavailable,
        ErrorCode::Configuration,
    ];
    codes.sort_by_key(|c| c.exit_code());
    codes
}

/// Exhaustive on purpose: a new error code does not compile until it is
/// described here (and listed in `exit_codes`).
fn exit_meaning(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Internal => "an unexpected failure",
        ErrorCode::InvalidInput | ErrorCode::Expired => {
            "bad arguments or input (an expired link included)"
        }
        ErrorCode::NotFound => "no such contact, domain or operation",
        ErrorCode::OperationLimitExceeded => "the daily resend limit is reached",
        ErrorCode::UnsupportedTLD => "the domain's TLD is not in verification.supported_tlds",
        ErrorCode::Unavailable => "the database or the SMTP relay did not answer",
        ErrorCode::Configuration => "the configuration is wrong; the message names the key",
    }
}
