//! Checking a loaded configuration: the shape of what was given (unknown
//! keys, enum values, whole numbers, with where each came from) and the
//! rules between the values, each error naming its key.

use super::*;

impl Settings {
    pub(super) fn validate(&self) -> Result<()> {
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(Error::config(
                "database.url must start with sqlite:// or postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(Error::config("database.max_connections must be at least 1"));
        }
        let v = &self.verification;
        if !(1..=365).contains(&v.key_validity_days) {
            return Err(Error::config(
                "verification.key_validity_days must be between 1 and 365",
            ));
        }
        if v.reminder_days.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::config(
                "verification.reminder_days must be strictly increasing",
            ));
        }
        if let Some(d) = v
            .reminder_days
            .iter()
            .find(|d| **d == 0 || **d >= v.key_validity_days)
        {
            return Err(Error::config(format!(
                "verification.reminder_days: day {d} must be between 1 and key_validity_days - 1"
            )));
        }
        let link = url::Url::parse(&v.link_base_url)
            .map_err(|e| Error::config(format!("verification.link_base_url is not a URL: {e}")))?;
        if !matches!(link.scheme(), "http" | "https")
            || link.query().is_some()
            || link.fragment().is_some()
        {
            return Err(Error::config(
                "verification.link_base_url must be an http(s) URL without query or fragment",
            ));
        }
        if v.link_base_url
            .chars()
            .any(|c| "\"'<>&".contains(c) || c.is_whitespace())
        {
            return Err(Error::config(
                "verification.link_base_url must not contain quotes, <, >, & or spaces",
            ));
        }
        if !v.secret.is_empty() {
            TokenSecret::new(v.secret.as_bytes().to_vec()).map_err(|_| {
                Error::config(format!(
                    "verification.secret must be at least {} bytes",
                    TokenSecret::MIN_LEN
                ))
            })?;
        }
        for tld in &v.supported_tlds {
            if tld.is_empty() || tld != &tld.to_ascii_lowercase() || tld.starts_with('.') {
                return Err(Error::config(format!(
                    "verification.supported_tlds: {tld:?} must be a lowercase TLD without a dot"
                )));
            }
        }
        let s = &self.smtp;
        if s.transport == MailTransport::File && s.file_dir.trim().is_empty() {
            return Err(Error::config(
                "smtp.file_dir must name a directory when smtp.transport = \"file\"",
            ));
        }
        if s.host.trim().is_empty() {
            return Err(Error::config("smtp.host is empty"));
        }
        if s.port == 0 {
            return Err(Error::config("smtp.port must not be 0"));
        }
        s.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| Error::config(format!("smtp.from is not a valid mailbox: {e}")))?;
        if s.timeout_secs == 0 {
            return Err(Error::config("smtp.timeout_secs must be at least 1"));
        }
        if s.retry_initial_secs == 0 || s.retry_max_secs < s.retry_initial_secs {
            return Err(Error::config(
                "smtp.retry_initial_secs must be at least 1 and smtp.retry_max_secs at least retry_initial_secs",
            ));
        }
        if s.max_connections == 0 {
            return Err(Error::config("smtp.max_connections must be at least 1"));
        }
        if !s.username.is_empty() && s.password.is_empty() {
            return Err(Error::config(
                "smtp.password (or smtp.password_file) is required when smtp.username is set",
            ));
        }
        if !s.ca_file.is_empty() && !Path::new(&s.ca_file).is_file() {
            return Err(Error::config(format!(
                "smtp.ca_file: {} is not a file",
                s.ca_file
            )));
        }
        tokio_cron_scheduler::Job::new_async(self.schedule.sweep.as_str(), |_, _| {
            Box::pin(async {})
        })
        .map_err(|e| {
            Error::config(format!(
                "schedule.sweep {:?} is not a cron expression with seconds ({e}): it has six \
                 fields, second minute hour day-of-month month day-of-week, e.g. \
                 \"0 */5 * * * *\" for every five minutes",
                self.schedule.sweep
            ))
        })?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            Error::config(format!(
                "log.level {:?} is not a log filter ({e}): use a level (error, warn, info, \
                 debug, trace) or directives such as \"info,contact_verifier=debug\"",
                self.log.level
            ))
        })?;
        if s.data_timeout_secs == 0 {
            return Err(Error::config("smtp.data_timeout_secs must be at least 1"));
        }
        if !s.return_path.is_empty() {
            s.return_path.parse::<lettre::Address>().map_err(|e| {
                Error::config(format!("smtp.return_path is not an email address: {e}"))
            })?;
        }
        self.validate_branding()?;
        // A claim must outlast the send it covers, or another sweep could
        // take the address while the relay is still answering.
        if self.schedule.claim_lease_secs < s.timeout_secs + s.data_timeout_secs {
            return Err(Error::config(format!(
                "schedule.claim_lease_secs ({}) must be at least smtp.timeout_secs + \
                 smtp.data_timeout_secs ({}): a claim must outlast the send it covers",
                self.schedule.claim_lease_secs,
                s.timeout_secs + s.data_timeout_secs
            )));
        }
        // An address:port, or a host name and port (localhost:8080).
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            let port_ok = self
                .http
                .listen
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(Error::config(format!(
                    "http.listen {:?} is not an address:port or host:port (e.g. 127.0.0.1:8080)",
                    self.http.listen
                )));
            }
        }
        if self.http.max_body_bytes == 0 {
            return Err(Error::config("http.max_body_bytes must be at least 1"));
        }
        for proxy in &self.http.trusted_proxies {
            proxy.parse::<std::net::IpAddr>().map_err(|_| {
                Error::config(format!(
                    "http.trusted_proxies: {proxy:?} is not an IP address"
                ))
            })?;
        }
        let h = &self.hooks;
        if !h.url.is_empty() {
            let u = url::Url::parse(&h.url)
                .map_err(|e| Error::config(format!("hooks.url {:?} is not a URL: {e}", h.url)))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(Error::config(format!(
                    "hooks.url {:?} must be an http:// or https:// URL",
                    h.url
                )));
            }
            if h.secret.is_empty() {
                return Err(Error::config(
                    "hooks.secret_file (or hooks.secret) is required when hooks.url is set: it signs the posts",
                ));
            }
        }
        if h.timeout_secs == 0 {
            return Err(Error::config("hooks.timeout_secs must be at least 1"));
        }
        self.validate_aws()?;
        if !self.templates.dir.is_empty() && !Path::new(&self.templates.dir).is_dir() {
            return Err(Error::config(format!(
                "templates.dir: {} is not a directory",
                self.templates.dir
            )));
        }
        Ok(())
    }

    /// `[aws]`: with `enabled`, a key pair and a region are required.
    fn validate_branding(&self) -> Result<()> {
        let b = &self.branding;
        if b.name.chars().count() > 200 {
            return Err(Error::config("branding.name is longer than 200 characters"));
        }
        if !b.support_email.is_empty() {
            b.support_email.parse::<lettre::Address>().map_err(|e| {
                Error::config(format!(
                    "branding.support_email {:?} is not an email address ({e}); use e.g. \
                     \"support@registrar.example\" or leave it empty",
                    b.support_email
                ))
            })?;
        }
        for (key, value) in [("support_url", &b.support_url), ("logo_url", &b.logo_url)] {
            if value.is_empty() {
                continue;
            }
            let ok = url::Url::parse(value)
                .ok()
                .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
            if ok.is_none() || value.contains(['"', '<', '>', '\'', ' ']) {
                return Err(Error::config(format!(
                    "branding.{key} {value:?} is not an http(s) URL; use e.g. \
                     \"https://registrar.example/help\" or leave it empty"
                )));
            }
        }
        Ok(())
    }

    fn validate_aws(&self) -> Result<()> {
        let a = &self.aws;
        if !a.enabled {
            return Ok(());
        }
        if a.access_key_id.is_empty() {
            return Err(Error::config(
                "aws.access_key_id is required when aws.enabled is true",
            ));
        }
        if a.access_key_id.len() > 128
            || !a
                .access_key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Error::config(
                "aws.access_key_id must be 1 to 128 letters, digits or underscores",
            ));
        }
        if a.secret_access_key.is_empty() {
            return Err(Error::config(
                "aws.secret_access_key_file (or aws.secret_access_key) is required when aws.enabled is true",
            ));
        }
        if a.secret_access_key.len() < AWS_MIN_SECRET_LEN {
            return Err(Error::config(format!(
                "aws.secret_access_key must be at least {AWS_MIN_SECRET_LEN} characters"
            )));
        }
        let region_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        if a.region.is_empty() || !a.region.bytes().all(region_char) {
            return Err(Error::config(format!(
                "aws.region {:?} must be a region name such as us-east-1",
                a.region
            )));
        }
        if !self.http.enabled {
            return Err(Error::config(
                "aws.enabled needs http.enabled = true: the AWS endpoint is served on http.listen",
            ));
        }
        Ok(())
    }
}

/// Keys whose value is one of a fixed set, with that set.
const ENUM_KEYS: &[(&str, &str, &[&str])] = &[
    ("smtp", "tls", &["starttls", "tls", "none"]),
    ("smtp", "transport", &["smtp", "file"]),
    ("log", "format", &["json", "pretty"]),
];

/// Where a key's value came from, for error messages.
fn origin(section: &str, key: &str, file: Option<&Path>) -> String {
    let var = format!(
        "{CONFIG_PREFIX}__{}__{}",
        section.to_uppercase(),
        key.to_uppercase()
    );
    if std::env::var_os(&var).is_some() {
        format!("from the environment variable {var}")
    } else if let Some(f) = file {
        format!("in {}", f.display())
    } else {
        "from the built-in defaults".to_string()
    }
}

const CONFIG_PREFIX: &str = "CONTACT_VERIFIER";

/// Checks the configuration as given against the keys and types the
/// product knows, before serde turns it into settings, so that an error
/// names the key, where it came from and what is allowed: an unknown key
/// (a typo in a file or an environment variable), a value outside an enum,
/// a fraction or text where a whole number belongs.
pub(super) fn check_shape(given: &serde_json::Value, file: Option<&Path>) -> Result<()> {
    use serde_json::Value;
    let known = serde_json::to_value(Settings::default()).unwrap_or(Value::Null);
    let (Some(given), Some(known)) = (given.as_object(), known.as_object()) else {
        return Ok(());
    };
    for (section, values) in given {
        let Some(known_section) = known.get(section).and_then(Value::as_object) else {
            let sections: Vec<&str> = known.keys().map(String::as_str).collect();
            let prefix = format!("{CONFIG_PREFIX}__{}__", section.to_uppercase());
            let from = match std::env::vars().find(|(k, _)| k.starts_with(&prefix)) {
                Some((var, _)) => format!("from the environment variable {var}"),
                None => file
                    .map(|f| format!("in {}", f.display()))
                    .unwrap_or_default(),
            };
            return Err(Error::config(format!(
                "unknown section [{section}] ({from}); the sections are: {}",
                sections.join(", ")
            )));
        };
        let Some(values) = values.as_object() else {
            continue;
        };
        for (key, value) in values {
            let at = || origin(section, key, file);
            let Some(default) = known_section.get(key) else {
                let keys: Vec<&str> = known_section.keys().map(String::as_str).collect();
                return Err(Error::config(format!(
                    "unknown key {section}.{key} ({}); the keys of [{section}] are: {}",
                    at(),
                    keys.join(", ")
                )));
            };
            if let Some((_, _, allowed)) = ENUM_KEYS
                .iter()
                .find(|(s, k, _)| *s == section.as_str() && *k == key.as_str())
            {
                let text = value.as_str().unwrap_or_default();
                if !allowed.contains(&text) {
                    return Err(Error::config(format!(
                        "{section}.{key} = {value} ({}) is not one of: {}",
                        at(),
                        allowed.join(", ")
                    )));
                }
            }
            if default.is_u64() || default.is_i64() {
                let whole = match value {
                    Value::Number(n) => n.is_u64() || n.is_i64(),
                    Value::String(t) => t.trim().parse::<u64>().is_ok(),
                    _ => false,
                };
                if !whole {
                    return Err(Error::config(format!(
                        "{section}.{key} = {value} ({}) must be a whole number",
                        at()
                    )));
                }
            }
        }
    }
    Ok(())
}
