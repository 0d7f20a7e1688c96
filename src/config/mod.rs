//! Configuration (CONTRACT section 4): built-in defaults, then the TOML file,
//! then `CONTACT_VERIFIER__SECTION__KEY` environment variables. Secrets may be
//! given inline or, preferably, as files (systemd credentials); either way they
//! are masked whenever the configuration is printed.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{Policy, TokenSecret};

mod validate;
use crate::{Error, Result};
use validate::check_shape;

/// Environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "CONTACT_VERIFIER_CONFIG";
const MASK: &str = "***";
/// AWS issues 40-character secrets; anything much shorter is guessable.
const AWS_MIN_SECRET_LEN: usize = 16;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub verification: VerificationSettings,
    pub smtp: SmtpSettings,
    pub schedule: ScheduleSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub templates: TemplateSettings,
    pub suspension: SuspensionSettings,
    pub hooks: HookSettings,
    pub aws: AwsSettings,
    pub branding: BrandingSettings,
}

/// CONTRACT section 7: the deadline after which a waiting domain is suspended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuspensionSettings {
    /// Days a domain may wait on its registrant; 0 turns suspension off.
    pub after_days: u32,
    /// A bounce naming a Validated address sends it back to verification.
    pub reverify_on_bounce: bool,
}

impl Default for SuspensionSettings {
    fn default() -> Self {
        SuspensionSettings {
            after_days: 15,
            reverify_on_bounce: true,
        }
    }
}

/// CONTRACT section 9: who the registrant is dealing with and where to get
/// help, on every email and page. Empty values are not set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrandingSettings {
    /// The registrar's name; empty: the display name of `smtp.from`.
    pub name: String,
    pub support_email: String,
    /// An http(s) page where registrants get help.
    pub support_url: String,
    /// An http(s) image shown on pages and HTML emails.
    pub logo_url: String,
}

/// CONTRACT section 11: the AWS-compatible endpoint (Route 53 Domains over
/// AWS JSON 1.1, Signature Version 4), served on `http.listen` when enabled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    pub enabled: bool,
    /// The one access key id requests may be signed with.
    pub access_key_id: String,
    /// Its secret, preferably from a file (a systemd credential).
    pub secret_access_key_file: String,
    pub secret_access_key: String,
    /// The region requests must be signed for.
    pub region: String,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            enabled: false,
            access_key_id: String::new(),
            secret_access_key_file: String::new(),
            secret_access_key: String::new(),
            region: "us-east-1".into(),
        }
    }
}

/// CONTRACT section 8: where events are delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookSettings {
    /// Run once per event (through `/bin/sh -c`), the event on stdin; exit 0
    /// means delivered.
    pub command: String,
    /// POSTed each event; a 2xx answer means delivered.
    pub url: String,
    /// Signs webhook posts; required with `url`.
    pub secret_file: String,
    pub secret: String,
    pub timeout_secs: u64,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            command: String::new(),
            url: String::new(),
            secret_file: String::new(),
            secret: String::new(),
            timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (created if missing) or `postgres://user@host/db`.
    pub url: String,
    pub max_connections: u32,
    /// How long a query waits for a connection (or a SQLite lock) before the
    /// database counts as unavailable.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://contact-verifier.db".into(),
            max_connections: 5,
            acquire_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationSettings {
    pub key_validity_days: u32,
    pub reminder_days: Vec<u32>,
    pub resend_limit_per_day: u32,
    pub notify_on_expiry: bool,
    /// The token is appended as `/TOKEN`.
    pub link_base_url: String,
    pub secret_file: String,
    pub secret: String,
    /// Set when this run generated the SQLite default's secret file (logged
    /// once the log is set up).
    #[serde(skip)]
    pub secret_generated: Option<PathBuf>,
    /// Lowercase TLDs (`com`, `xn--p1ai`); empty accepts every TLD.
    pub supported_tlds: Vec<String>,
}

impl Default for VerificationSettings {
    fn default() -> Self {
        VerificationSettings {
            key_validity_days: 60,
            reminder_days: vec![3, 7, 14, 30, 45, 55],
            resend_limit_per_day: 5,
            notify_on_expiry: true,
            link_base_url: "http://127.0.0.1:8080/verify".into(),
            secret_file: String::new(),
            secret: String::new(),
            secret_generated: None,
            supported_tlds: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS; refused if the server cannot.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on the same host.
    None,
}

/// Where mail goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// The SMTP relay (production).
    Smtp,
    /// Each message as an .eml file in `smtp.file_dir`: for trying the
    /// product on a machine without a relay. Nothing reaches anyone.
    File,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// "smtp" (the relay) or "file" (development: .eml files in `file_dir`).
    pub transport: MailTransport,
    /// The directory the file transport writes to (created if missing).
    pub file_dir: String,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// PEM file of extra CA certificates for a relay with a private CA.
    pub ca_file: String,
    pub username: String,
    pub password_file: String,
    pub password: String,
    pub from: String,
    pub timeout_secs: u64,
    /// How long to wait for the relay's answer to the end of a message
    /// (RFC 5321 4.5.3.2.6: 10 minutes), apart from the command timeout.
    pub data_timeout_secs: u64,
    /// The envelope sender (where bounces go); empty: the address of `from`.
    pub return_path: String,
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    /// Connections kept open to the relay, and so emails sent at once.
    pub max_connections: u32,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            transport: MailTransport::Smtp,
            file_dir: "outbox".into(),
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::Starttls,
            ca_file: String::new(),
            username: String::new(),
            password_file: String::new(),
            password: String::new(),
            from: "Registrar <verify@registrar.example>".into(),
            timeout_secs: 30,
            data_timeout_secs: 600,
            return_path: String::new(),
            retry_initial_secs: 60,
            retry_max_secs: 3600,
            max_connections: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Cron with a seconds field.
    pub sweep: String,
    /// How long a row stays claimed by a sweep that is sending its email; a
    /// crashed sweep's rows are taken up again after this.
    pub claim_lease_secs: u64,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            sweep: "0 */5 * * * *".into(),
            claim_lease_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub enabled: bool,
    pub listen: String,
    pub api_token_file: String,
    pub api_token: String,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies), for the
    /// client address recorded as evidence of a confirmation.
    pub trusted_proxies: Vec<String>,
    /// Serve `/metrics` (Prometheus text format, no token).
    pub metrics: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            api_token_file: String::new(),
            api_token: String::new(),
            max_body_bytes: 64 * 1024,
            trusted_proxies: vec!["127.0.0.1".into(), "::1".into()],
            metrics: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter (`info`, `contact_verifier=debug,sqlx=warn`);
    /// `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateSettings {
    /// A directory whose files override the built-in email templates.
    pub dir: String,
}

impl Settings {
    /// The registrar's name as emails and pages show it: `branding.name`,
    /// else the display name of `smtp.from`, else its domain.
    pub fn registrar_name(&self) -> String {
        if !self.branding.name.trim().is_empty() {
            return self.branding.name.trim().to_string();
        }
        match self.smtp.from.parse::<lettre::message::Mailbox>() {
            Ok(m) => m
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| m.email.domain().to_string()),
            Err(_) => self.smtp.from.clone(),
        }
    }

    /// Loads and validates the configuration: `path`, else `$CONTACT_VERIFIER_CONFIG`,
    /// else defaults alone; then the environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Settings> {
        let env_path = std::env::var_os(CONFIG_ENV).map(PathBuf::from);
        let path = path.map(Path::to_path_buf).or(env_path);
        let mut builder = config::Config::builder();
        if let Some(p) = &path {
            if !p.is_file() {
                return Err(Error::config(format!(
                    "configuration file {} does not exist or is not a file",
                    p.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(p.as_path())
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("CONTACT_VERIFIER")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("verification.reminder_days")
                .with_list_parse_key("verification.supported_tlds")
                .with_list_parse_key("http.trusted_proxies"),
        );
        let cfg = builder
            .build()
            .map_err(|e| Error::config(format!("cannot read configuration: {e}")))?;
        let given: serde_json::Value = cfg
            .clone()
            .try_deserialize()
            .map_err(|e| Error::config(format!("cannot read configuration: {e}")))?;
        check_shape(&given, path.as_deref())?;
        let mut settings: Settings = cfg
            .try_deserialize()
            .map_err(|e| Error::config(format!("invalid configuration: {e}")))?;
        settings.resolve_secret_files()?;
        settings.validate()?;
        settings.default_sqlite_secret()?;
        Ok(settings)
    }

    /// Replaces `*_file` settings by the secrets they hold. A blank optional
    /// secret file means "not set", so a service manager can supply an empty
    /// fallback (systemd's SetCredential=) when no SMTP password or API token
    /// is used; a blank link secret is refused.
    fn resolve_secret_files(&mut self) -> Result<()> {
        resolve_secret(
            "verification.secret",
            &mut self.verification.secret,
            &self.verification.secret_file,
            Blank::Refused,
        )?;
        resolve_secret(
            "smtp.password",
            &mut self.smtp.password,
            &self.smtp.password_file,
            Blank::NotSet,
        )?;
        resolve_secret(
            "http.api_token",
            &mut self.http.api_token,
            &self.http.api_token_file,
            Blank::NotSet,
        )?;
        resolve_secret(
            "hooks.secret",
            &mut self.hooks.secret,
            &self.hooks.secret_file,
            Blank::Refused,
        )?;
        resolve_secret(
            "aws.secret_access_key",
            &mut self.aws.secret_access_key,
            &self.aws.secret_access_key_file,
            Blank::Refused,
        )?;
        Ok(())
    }

    /// With no link secret configured and a SQLite database (one host), the
    /// secret is read from, or first generated into, a 0600 file next to
    /// the database: a first run needs no setup, and every command on that
    /// database signs links the same way. Postgres is shared by several
    /// hosts, which must share one secret: there it stays an error.
    fn default_sqlite_secret(&mut self) -> Result<()> {
        if !self.verification.secret.is_empty() || !self.database.url.starts_with("sqlite:") {
            return Ok(());
        }
        let db = sqlx::sqlite::SqliteConnectOptions::from_str(&self.database.url)
            .map_err(|e| Error::config(format!("database.url is not a SQLite URL: {e}")))?;
        let db_path = db.get_filename();
        if db_path.as_os_str().is_empty() || db_path.to_str() == Some(":memory:") {
            return Ok(());
        }
        let path = db_path.with_extension("secret");
        // No directory for the database: opening it fails next, and says so.
        if path
            .parent()
            .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            return Ok(());
        }
        let (secret, generated) = crate::domain::token::load_or_create_secret(&path)?;
        self.verification.secret = secret;
        self.verification.secret_generated = generated.then_some(path);
        Ok(())
    }

    /// The link secret; an error naming the key when none is configured.
    pub fn token_secret(&self) -> Result<TokenSecret> {
        if self.verification.secret.is_empty() {
            return Err(Error::config(
                "verification.secret_file (or verification.secret) must be set to send or confirm verification links",
            ));
        }
        TokenSecret::new(self.verification.secret.as_bytes().to_vec())
    }

    pub fn policy(&self) -> Policy {
        let days = |d: u32| chrono::Duration::days(i64::from(d));
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        Policy {
            key_validity: days(self.verification.key_validity_days),
            reminder_days: self.verification.reminder_days.clone(),
            notify_on_expiry: self.verification.notify_on_expiry,
            retry_initial: secs(self.smtp.retry_initial_secs),
            retry_max: secs(self.smtp.retry_max_secs),
            claim_lease: secs(self.schedule.claim_lease_secs),
            suspend_after: (self.suspension.after_days > 0)
                .then(|| days(self.suspension.after_days)),
            hooks_configured: !self.hooks.command.is_empty() || !self.hooks.url.is_empty(),
            reverify_on_bounce: self.suspension.reverify_on_bounce,
            // Connect, TLS, greeting with STARTTLS and AUTH, MAIL, RCPT and
            // DATA each have the command timeout; the final dot its own.
            send_bound: secs(6 * self.smtp.timeout_secs + self.smtp.data_timeout_secs)
                + chrono::Duration::from_std(crate::domain::verification::FINAL_WRITE_WINDOW)
                    .unwrap_or_default(),
        }
    }

    /// The configuration as `check-config` prints it: every secret masked,
    /// including passwords embedded in the database URL.
    pub fn masked(&self) -> serde_json::Value {
        let mut s = self.clone();
        for secret in [
            &mut s.verification.secret,
            &mut s.smtp.password,
            &mut s.http.api_token,
            &mut s.hooks.secret,
            &mut s.aws.secret_access_key,
        ] {
            if !secret.is_empty() {
                *secret = MASK.to_string();
            }
        }
        s.database.url = mask_url_password(&s.database.url);
        serde_json::to_value(&s).unwrap_or(serde_json::Value::Null)
    }
}

/// Masks the password of a URL such as `postgres://user:pw@host/db`.
pub fn mask_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some(MASK));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// What a secret file holding only white space means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blank {
    Refused,
    NotSet,
}

fn resolve_secret(key: &str, value: &mut String, file: &str, blank: Blank) -> Result<()> {
    if file.is_empty() {
        return Ok(());
    }
    if !value.is_empty() {
        return Err(Error::config(format!(
            "{key} and {key}_file are both set: keep one"
        )));
    }
    let bytes = std::fs::read(file)
        .map_err(|e| Error::config(format!("{key}_file: cannot read {file}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::config(format!("{key}_file: {file} is not UTF-8 text")))?;
    let text = text.trim();
    if text.is_empty() {
        return match blank {
            Blank::NotSet => Ok(()),
            Blank::Refused => Err(Error::config(format!("{key}_file: {file} is empty"))),
        };
    }
    *value = text.to_string();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_match_the_contract() {
        let s = Settings::default();
        s.validate().unwrap();
        assert_eq!(s.database.url, "sqlite://contact-verifier.db");
        assert_eq!(s.verification.reminder_days, vec![3, 7, 14, 30, 45, 55]);
        assert_eq!(s.schedule.sweep, "0 */5 * * * *");
        assert_eq!(s.http.listen, "127.0.0.1:8080");
    }

    #[test]
    fn unsorted_reminder_days_are_refused_naming_the_key() {
        let mut s = Settings::default();
        s.verification.reminder_days = vec![7, 3];
        let e = s.validate().unwrap_err();
        assert!(
            e.message.contains("verification.reminder_days"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_cron_is_refused_naming_the_key() {
        let mut s = Settings::default();
        s.schedule.sweep = "every five minutes".into();
        let e = s.validate().unwrap_err();
        assert!(e.message.contains("schedule.sweep"), "{}", e.message);
    }

    #[test]
    fn masked_config_hides_every_secret() {
        let mut s = Settings::default();
        s.verification.secret = "s".repeat(40);
        s.smtp.password = "hunter2".into();
        s.http.api_token = "tok-123".into();
        s.database.url = "postgres://u:pw-secret@db/x".into();
        let text = s.masked().to_string();
        for secret in ["ssssssss", "hunter2", "tok-123", "pw-secret"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn secret_and_secret_file_together_are_refused() {
        let mut v = "x".to_string();
        let e =
            resolve_secret("smtp.password", &mut v, "/etc/hostname", Blank::NotSet).unwrap_err();
        assert!(e.message.contains("smtp.password"));
    }

    #[test]
    fn blank_file_means_not_set_for_optional_secrets_only() {
        let dir = tempfile::tempdir().unwrap();
        let blank = dir.path().join("blank");
        std::fs::write(&blank, " \n").unwrap();
        let blank = blank.to_str().unwrap();
        let mut token = String::new();
        resolve_secret("http.api_token", &mut token, blank, Blank::NotSet).unwrap();
        assert!(token.is_empty());
        let mut secret = String::new();
        let e =
            resolve_secret("verification.secret", &mut secret, blank, Blank::Refused).unwrap_err();
        assert!(
            e.message.contains("verification.secret_file"),
            "{}",
            e.message
        );
    }
}
