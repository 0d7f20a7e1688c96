//! Email templates: a subject, a plain-text and an HTML part per kind and
//! language (`verification.txt`, `verification.de.txt`, ...), compiled into
//! the binary and overridable file by file from `templates.dir`, which may
//! also add languages (`verification.it.txt`). HTML parts are auto-escaped
//! and share one layout (`mail-layout.html`); plain-text parts are wrapped
//! at 72 columns after rendering, so a template writes each paragraph on one
//! line.

use std::path::Path;

use chrono::{DateTime, Utc};
use minijinja::Value;

use crate::config::BrandingSettings;
use crate::domain::{Language, Notice};
use crate::i18n::{format_date, Catalog};
use crate::Result;

/// Every built-in file, English under `NAME.EXT`.
const BUILTIN: &[(&str, &str)] = &[
    ("mail-layout.html", include_str!("templates/mail-layout.html")),
    (
        "verification.subject.txt",
        include_str!("templates/verification.subject.txt"),
    ),
    ("verification.txt", include_str!("templates/verification.txt")),
    ("verification.html", include_str!("templates/verification.html")),
    (
        "verification.subject.de.txt",
        include_str!("templates/verification.subject.de.txt"),
    ),
    ("verification.de.txt", include_str!("templates/verification.de.txt")),
    ("verification.de.html", include_str!("templates/verification.de.html")),
    (
        "verification.subject.fr.txt",
        include_str!("templates/verification.subject.fr.txt"),
    ),
    ("verification.fr.txt", include_str!("templates/verification.fr.txt")),
    ("verification.fr.html", include_str!("templates/verification.fr.html")),
    (
        "verification.subject.es.txt",
        include_str!("templates/verification.subject.es.txt"),
    ),
    ("verification.es.txt", include_str!("templates/verification.es.txt")),
    ("verification.es.html", include_str!("templates/verification.es.html")),
    (
        "reminder.subject.txt",
        include_str!("templates/reminder.subject.txt"),
    ),
    ("reminder.txt", include_str!("templates/reminder.txt")),
    ("reminder.html", include_str!("templates/reminder.html")),
    (
        "reminder.subject.de.txt",
        include_str!("templates/reminder.subject.de.txt"),
    ),
    ("reminder.de.txt", include_str!("templates/reminder.de.txt")),
    ("reminder.de.html", include_str!("templates/reminder.de.html")),
    (
        "reminder.subject.fr.txt",
        include_str!("templates/reminder.subject.fr.txt"),
    ),
    ("reminder.fr.txt", include_str!("templates/reminder.fr.txt")),
    ("reminder.fr.html", include_str!("templates/reminder.fr.html")),
    (
        "reminder.subject.es.txt",
        include_str!("templates/reminder.subject.es.txt"),
    ),
    ("reminder.es.txt", include_str!("templates/reminder.es.txt")),
    ("reminder.es.html", include_str!("templates/reminder.es.html")),
    (
        "expiry.subject.txt",
        include_str!("templates/expiry.subject.txt"),
    ),
    ("expiry.txt", include_str!("templates/expiry.txt")),
    ("expiry.html", include_str!("templates/expiry.html")),
    (
        "expiry.subject.de.txt",
        include_str!("templates/expiry.subject.de.txt"),
    ),
    ("expiry.de.txt", include_str!("templates/expiry.de.txt")),
    ("expiry.de.html", include_str!("templates/expiry.de.html")),
    (
        "expiry.subject.fr.txt",
        include_str!("templates/expiry.subject.fr.txt"),
    ),
    ("expiry.fr.txt", include_str!("templates/expiry.fr.txt")),
    ("expiry.fr.html", include_str!("templates/expiry.fr.html")),
    (
        "expiry.subject.es.txt",
        include_str!("templates/expiry.subject.es.txt"),
    ),
    ("expiry.es.txt", include_str!("templates/expiry.es.txt")),
    ("expiry.es.html", include_str!("templates/expiry.es.html")),
];

/// The files that exist per language (`NAME.LANG.EXT`).
const LOCALIZED: &[&str] = &[
    "verification.subject.txt",
    "verification.txt",
    "verification.html",
    "reminder.subject.txt",
    "reminder.txt",
    "reminder.html",
    "expiry.subject.txt",
    "expiry.txt",
    "expiry.html",
];

/// Where plain text is wrapped: the width mail clients show without
/// rewrapping (RFC 3676's advice).
pub const TEXT_WIDTH: usize = 72;

/// What one email is about; the templates get it with the branding and the
/// language's own date.
#[derive(Debug, Clone)]
pub struct MailContext {
    /// The registrant's address.
    pub email: String,
    /// Every domain of every contact using the address.
    pub domains: Vec<String>,
    /// The confirmation link; for the expiry notice, the expired key's link,
    /// whose page offers a new one.
    pub link: String,
    /// When the key expires (or expired).
    pub expires_at: DateTime<Utc>,
    /// Whole days left until then, rounded up.
    pub days_left: i64,
    /// The address's language; English when none or no template has it.
    pub language: Option<Language>,
    /// Who is writing and where to get help (`name` already resolved).
    pub branding: BrandingSettings,
}

/// A rendered email.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    catalog: Catalog,
}

impl Templates {
    /// The built-in templates with the files of `dir`: a file named as a
    /// built-in one replaces it, a `NAME.LANG.EXT` adds a language. Every
    /// template is compiled now, so a broken one is a configuration error at
    /// start-up, not a failed send later. The pages' templates in the same
    /// directory are checked too: the daemon reads the directory here first.
    pub fn load(dir: Option<&Path>) -> Result<Templates> {
        crate::api::pages::load_templates(dir)?;
        Ok(Templates {
            catalog: Catalog::load(BUILTIN, LOCALIZED, dir)?,
        })
    }

    pub fn render(&self, notice: Notice, ctx: &MailContext) -> Result<Rendered> {
        let kind = notice.template();
        let part = |name: String| -> Result<String> {
            let (name, lang) = self.catalog.pick(&name, ctx.language.as_ref());
            self.catalog.render(&name, &values(ctx, &lang))
        };
        let subject = part(format!("{kind}.subject.txt"))?;
        Ok(Rendered {
            // A header is one line: fold whatever the template produced.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: wrap_text(&part(format!("{kind}.txt"))?, TEXT_WIDTH),
            html: part(format!("{kind}.html"))?,
        })
    }
}

/// What a template can use, for a template written in `lang`.
fn values(ctx: &MailContext, lang: &str) -> Value {
    let b = &ctx.branding;
    minijinja::context! {
        lang,
        email => &ctx.email,
        domains => &ctx.domains,
        // The link is ours (a validated base URL without HTML-special
        // characters, then a base64url token): marked safe so the HTML part
        // carries it as written instead of entity-encoding every slash.
        link => Value::from_safe_string(ctx.link.clone()),
        expires_at => format_date(ctx.expires_at, lang),
        days_left => ctx.days_left,
        registrar => &b.name,
        support_email => &b.support_email,
        support_url => &b.support_url,
        logo_url => &b.logo_url,
    }
}

/// Wraps each line longer than `width` at spaces. A line is a paragraph
/// (templates write each on one line); lines that are indented or list
/// items (`- `, `* `), the signature separator `-- ` and blank lines stay as
/// they are, and a word longer than the width (a link) is never broken: it
/// gets a line of its own.
pub fn wrap_text(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let keep = line.chars().count() <= width
            || line.starts_with([' ', '\t'])
            || line.starts_with("- ")
            || line.starts_with("* ")
            || line == "-- ";
        if keep {
            out.push_str(line);
            continue;
        }
        let mut current = 0usize;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            let len = word.chars().count();
            if current > 0 && current + 1 + len > width {
                out.push('\n');
                current = 0;
            }
            if current > 0 {
                out.push(' ');
                current += 1;
            }
            out.push_str(word);
            current += len;
        }
    }
    out
}
