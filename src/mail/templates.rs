//! Email templates: a subject, a plain-text and an HTML part per kind,
//! compiled into the binary and overridable file by file from
//! `templates.dir` without a rebuild. HTML parts are auto-escaped.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

use crate::domain::Notice;
use crate::{Error, Result};

const DEFAULTS: &[(&str, &str)] = &[
    (
        "verification.subject.txt",
        include_str!("templates/verification.subject.txt"),
    ),
    (
        "verification.txt",
        include_str!("templates/verification.txt"),
    ),
    (
        "verification.html",
        include_str!("templates/verification.html"),
    ),
    (
        "reminder.subject.txt",
        include_str!("templates/reminder.subject.txt"),
    ),
    ("reminder.txt", include_str!("templates/reminder.txt")),
    ("reminder.html", include_str!("templates/reminder.html")),
    (
        "expiry.subject.txt",
        include_str!("templates/expiry.subject.txt"),
    ),
    ("expiry.txt", include_str!("templates/expiry.txt")),
    ("expiry.html", include_str!("templates/expiry.html")),
];

/// What a template can use.
#[derive(Debug, Clone, Serialize)]
pub struct MailContext {
    /// The registrant's address.
    pub email: String,
    /// Every domain of every contact using the address.
    pub domains: Vec<String>,
    /// The confirmation link (empty for the expiry notice).
    pub link: String,
    /// When the key expires, e.g. `2026-03-02 10:00 UTC`.
    pub expires_at: String,
    pub days_left: i64,
    /// The sender's display name (from `smtp.from`).
    pub registrar: String,
}

/// A rendered email.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by `dir/NAME` where that file
    /// exists. Every template is compiled now, so a broken override is a
    /// configuration error at start-up, not a failed send later.
    pub fn load(dir: Option<&Path>) -> Result<Templates> {
        let mut env = Environment::new();
        for (name, default) in DEFAULTS {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| {
                    Error::config(format!(
                        "templates.dir: cannot read {}: {e}",
                        path.display()
                    ))
                })?,
                None => (*default).to_string(),
            };
            env.add_template_owned(*name, source).map_err(|e| {
                Error::config(format!(
                    "templates.dir: template {name} does not compile: {e}"
                ))
            })?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, notice: Notice, ctx: &MailContext) -> Result<Rendered> {
        // The link is ours (a validated base URL without HTML-special
        // characters, then a base64url token): mark it safe so the HTML part
        // carries it as written instead of entity-encoding every slash.
        let values = minijinja::context! {
            link => minijinja::Value::from_safe_string(ctx.link.clone()),
            ..minijinja::Value::from_serialize(ctx)
        };
        let render = |suffix: &str| -> Result<String> {
            let name = format!("{}.{suffix}", notice.template());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&values))
                .map_err(|e| Error::internal(format!("cannot render template {name}: {e}")))
        };
        let subject = render("subject.txt")?;
        Ok(Rendered {
            // A header is one line: fold whatever the template produced.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(domains: &[&str]) -> MailContext {
        MailContext {
            email: "a@example.com".into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            link: "https://registrar.example/verify/TOKEN".into(),
            expires_at: "2026-03-02 10:00 UTC".into(),
            days_left: 57,
            registrar: "Registrar".into(),
        }
    }

    #[test]
    fn verification_email_carries_address_domains_link_expiry_and_consequence() {
        let t = Templates::load(None).unwrap();
        let r = t
            .render(Notice::Verification, &ctx(&["example.com", "example.net"]))
            .unwrap();
        assert_eq!(
            r.subject,
            "Action required: confirm your email address for example.com and 1 more domain"
        );
        for part in [&r.text, &r.html] {
            for needle in [
                "a@example.com",
                "example.com",
                "example.net",
                "https://registrar.example/verify/TOKEN",
                "2026-03-02 10:00 UTC",
                "suspended",
            ] {
                assert!(part.contains(needle), "{needle} missing from {part}");
            }
        }
    }

    #[test]
    fn reminder_counts_days_left_and_expiry_notice_says_how_to_get_a_new_link() {
        let t = Templates::load(None).unwrap();
        let r = t
            .render(Notice::Reminder { day: 3 }, &ctx(&["example.com"]))
            .unwrap();
        assert!(r.subject.starts_with("Reminder:"), "{}", r.subject);
        assert!(r.text.contains("57 days from now"), "{}", r.text);
        let e = t
            .render(Notice::ExpiryNotice, &ctx(&["example.com"]))
            .unwrap();
        assert!(e.text.contains("resend"), "{}", e.text);
        assert!(!e.text.contains("verify/TOKEN"));
    }

    #[test]
    fn html_part_escapes_what_it_interpolates() {
        let t = Templates::load(None).unwrap();
        let mut c = ctx(&["example.com"]);
        c.registrar = "<script>x</script>".into();
        let r = t.render(Notice::Verification, &c).unwrap();
        assert!(!r.html.contains("<script>"));
        assert!(r.text.contains("<script>"));
    }

    #[test]
    fn a_file_in_templates_dir_overrides_its_default_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("reminder.subject.txt"),
            "Custom {{ email }}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render(Notice::Reminder { day: 3 }, &ctx(&["example.com"]))
            .unwrap();
        assert_eq!(r.subject, "Custom a@example.com");
        assert!(r.text.contains("reminder"));
    }

    #[test]
    fn a_broken_override_is_a_configuration_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("expiry.txt"), "{% if %}").unwrap();
        let e = Templates::load(Some(dir.path())).err().unwrap();
        assert_eq!(e.code, crate::ErrorCode::Configuration);
        assert!(e.message.contains("expiry.txt"), "{}", e.message);
    }
}
