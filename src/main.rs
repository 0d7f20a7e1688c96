//! The `contact-verifier` binary: parses the command line, runs the command,
//! prints its JSON result, and maps errors to the contract's exit codes.

use std::process::ExitCode;

use clap::Parser;
use contact_verifier::cli::{execute, Cli, Command};

/// sysexits.h: a temporary failure; the caller should retry.
const EX_TEMPFAIL: u8 = 75;
use contact_verifier::ErrorCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // The contract wants one line: clap's message and its tip ("a
            // similar subcommand exists"), without clap's prefixes and usage.
            let text = e.to_string();
            let msg: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("Usage:")
                        && !l.starts_with("For more information")
                })
                .map(|l| l.strip_prefix("error: ").unwrap_or(l))
                .collect();
            let msg = if msg.is_empty() {
                "bad arguments".to_string()
            } else {
                msg.join("; ")
            };
            eprintln!("error: InvalidInput: {msg}");
            return exit(ErrorCode::InvalidInput);
        }
    };
    // A mail server's pipe retries on EX_TEMPFAIL (75) and bounces the
    // report back on other failures: a database outage must be the former.
    let tempfail_when_unavailable = matches!(cli.command, Command::Bounce { .. });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: InternalFailure: cannot start the async runtime: {e}");
            return exit(ErrorCode::Internal);
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(Some(value)) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = e.message.replace(['\n', '\r'], " ");
            eprintln!("error: {}: {msg}", e.code.as_str());
            if tempfail_when_unavailable && e.code == ErrorCode::Unavailable {
                return ExitCode::from(EX_TEMPFAIL);
            }
            exit(e.code)
        }
    }
}

fn exit(code: ErrorCode) -> ExitCode {
    ExitCode::from(u8::try_from(code.exit_code()).unwrap_or(1))
}
