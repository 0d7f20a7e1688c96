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
use crate::i18n::{format_date, html_attr, Catalog};
use crate::Result;

/// Every built-in file, English under `NAME.EXT`.
const BUILTIN: &[(&str, &str)] = &[
    (
        "mail-layout.html",
        include_str!("templates/mail-layout.html"),
    ),
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
        "verification.subject.de.txt",
        include_str!("templates/verification.subject.de.txt"),
    ),
    (
        "verification.de.txt",
        include_str!("templates/verification.de.txt"),
    ),
    (
        "verification.de.html",
        include_str!("templates/verification.de.html"),
    ),
    (
        "verification.subject.fr.txt",
        include_str!("templates/verification.subject.fr.txt"),
    ),
    (
        "verification.fr.txt",
        include_str!("templates/verification.fr.txt"),
    ),
    (
        "verification.fr.html",
        include_str!("templates/verification.fr.html"),
    ),
    (
        "verification.subject.es.txt",
        include_str!("templates/verification.subject.es.txt"),
    ),
    (
        "verification.es.txt",
        include_str!("templates/verification.es.txt"),
    ),
    (
        "verification.es.html",
        include_str!("templates/verification.es.html"),
    ),
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
    (
        "reminder.de.html",
        include_str!("templates/reminder.de.html"),
    ),
    (
        "reminder.subject.fr.txt",
        include_str!("templates/reminder.subject.fr.txt"),
    ),
    ("reminder.fr.txt", include_str!("templates/reminder.fr.txt")),
    (
        "reminder.fr.html",
        include_str!("templates/reminder.fr.html"),
    ),
    (
        "reminder.subject.es.txt",
        include_str!("templates/reminder.subject.es.txt"),
    ),
    ("reminder.es.txt", include_str!("templates/reminder.es.txt")),
    (
        "reminder.es.html",
        include_str!("templates/reminder.es.html"),
    ),
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
        crate::page_templates::load(dir)?;
        Ok(Templates {
            catalog: Catalog::load(BUILTIN, LOCALIZED, dir)?,
        })
    }

    pub fn render(&self, notice: Notice, ctx: &MailContext) -> Result<Rendered> {
        let kind = notice.template();
        let part = |name: String| -> Result<String> {
            let (name, lang) = self.catalog.pick(&name, ctx.language.as_ref());
            self.catalog
                .render(&name, &values(ctx, &lang, name.ends_with(".html")))
        };
        let subject = part(format!("{kind}.subject.txt"))?;
        Ok(Rendered {
            // A header is one line: fold whatever the template produced.
            subject: subject
                .split_ascii_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            text: wrap_text(&part(format!("{kind}.txt"))?, TEXT_WIDTH),
            html: part(format!("{kind}.html"))?,
        })
    }
}

/// What a template can use, for a template written in `lang`.
fn values(ctx: &MailContext, lang: &str, html: bool) -> Value {
    let b = &ctx.branding;
    let attr = |s: &str| {
        if html {
            html_attr(s)
        } else {
            Value::from(s)
        }
    };
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
        support_email => attr(&b.support_email),
        support_url => attr(&b.support_url),
        logo_url => attr(&b.logo_url),
    }
}

/// Whether the last word of `unit` is a number ("30", "30.", "13:08",
/// French "1er") that should not end a line.
fn binds_forward(unit: &str) -> bool {
    let word = unit.rsplit(' ').next().unwrap_or(unit);
    word == "1er"
        || (word.starts_with(|c: char| c.is_ascii_digit())
            && word
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ':'))
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
        // A number stays with the word after it ("1 day", "23 January"), and
        // "UTC" with the time before it.
        let mut units: Vec<String> = Vec::new();
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            match units.last_mut() {
                Some(last) if binds_forward(last) || word.starts_with("UTC") => {
                    last.push(' ');
                    last.push_str(word);
                }
                _ => units.push(word.to_string()),
            }
        }
        let mut current = 0usize;
        for word in &units {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://registrar.example/verify/q7Jx0bN-3kPz_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn ctx(domains: &[&str], lang: Option<&str>) -> MailContext {
        MailContext {
            email: "a@example.com".into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            link: LINK.into(),
            expires_at: DateTime::parse_from_rfc3339("2027-01-23T12:28:40Z")
                .unwrap()
                .with_timezone(&Utc),
            days_left: 57,
            language: lang.map(|l| Language::parse(l).unwrap()),
            branding: BrandingSettings {
                name: "Registrar".into(),
                ..BrandingSettings::default()
            },
        }
    }

    fn render(notice: Notice, c: &MailContext) -> Rendered {
        Templates::load(None).unwrap().render(notice, c).unwrap()
    }

    /// The text as one line, to find phrases that wrapping split.
    fn flat(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The lines of a plain-text part longer than the wrap width that are
    /// not a lone link.
    fn overlong(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.chars().count() > TEXT_WIDTH && l.contains(' '))
            .collect()
    }

    #[test]
    fn verification_email_carries_address_domains_link_expiry_and_consequence() {
        let r = render(
            Notice::Verification,
            &ctx(&["example.com", "example.net"], None),
        );
        assert_eq!(
            r.subject,
            "Action required: confirm your email address for example.com and 1 more domain"
        );
        for part in [&r.text, &r.html] {
            for needle in [
                "a@example.com",
                "example.com",
                "example.net",
                LINK,
                "23 January 2027, 12:28 UTC",
                "suspended",
                "your domains",
            ] {
                assert!(part.contains(needle), "{needle} missing from {part}");
            }
        }
        assert!(
            r.text.lines().any(|l| l == LINK),
            "the link in full on its own line:\n{}",
            r.text
        );
    }

    #[test]
    fn the_html_part_has_a_real_button_and_a_link_that_wraps() {
        let r = render(Notice::Verification, &ctx(&["example.com"], None));
        let button = format!("<a href=\"{LINK}\" target=\"_blank\" style=\"display:inline-block;");
        assert!(r.html.contains(&button), "{}", r.html);
        assert!(r.html.contains(">Confirm my email address</a>"));
        assert!(r.html.contains("bgcolor=\"#1d4ed8\""), "table-based button");
        assert!(r.html.contains("word-break:break-all"), "long link wraps");
        assert!(r.html.contains("max-width:600px"), "{}", r.html);
        assert!(r.html.contains("<html lang=\"en\">"));
    }

    #[test]
    fn singular_and_plural_follow_the_counts() {
        let one = render(Notice::Reminder { day: 3 }, &ctx(&["example.com"], None));
        assert_eq!(
            one.subject,
            "Reminder: please confirm your email address for example.com"
        );
        assert!(flat(&one.text).contains("your domain may"), "{}", one.text);
        assert!(flat(&one.text).contains("57 days from now"), "{}", one.text);
        let mut c = ctx(&["example.com", "example.net", "example.org"], None);
        c.days_left = 1;
        let three = render(Notice::Reminder { day: 55 }, &c);
        assert_eq!(
            three.subject,
            "Reminder: please confirm your email address for example.com and 2 more domains"
        );
        assert!(
            flat(&three.text).contains("your domains may"),
            "{}",
            three.text
        );
        assert!(
            flat(&three.text).contains("(1 day from now)"),
            "{}",
            three.text
        );
        assert!(
            flat(&three.html).contains("(1 day from now)"),
            "{}",
            three.html
        );

        let fr = render(Notice::Reminder { day: 55 }, &{
            let mut c = ctx(&["example.com"], Some("fr"));
            c.days_left = 1;
            c
        });
        assert!(flat(&fr.text).contains("(encore 1 jour)"), "{}", fr.text);
        assert!(
            flat(&fr.text).contains("votre domaine risque d'être suspendu"),
            "{}",
            fr.text
        );
        let es = render(
            Notice::Reminder { day: 3 },
            &ctx(&["a.es", "b.es"], Some("es")),
        );
        assert!(flat(&es.text).contains("(quedan 57 días)"), "{}", es.text);
        assert!(
            flat(&es.text).contains("sus dominios podrían ser suspendidos"),
            "{}",
            es.text
        );
        assert!(
            es.subject.ends_with("para a.es y 1 dominio más"),
            "{}",
            es.subject
        );
        let de = render(
            Notice::ExpiryNotice,
            &ctx(&["a.de", "b.de", "c.de"], Some("de")),
        );
        assert!(
            de.subject
                .ends_with("a.de und 2 weitere Domains können gesperrt werden"),
            "{}",
            de.subject
        );
    }

    #[test]
    fn each_built_in_language_speaks_formally_and_writes_its_own_date() {
        let cases = [
            (
                "de",
                "23. Januar 2027, 12:28 UTC",
                "Bitte bestätigen Sie Ihre E-Mail-Adresse für example.com",
                "gesperrt",
                "E-Mail-Adresse bestätigen",
            ),
            (
                "fr",
                "23 janvier 2027, 12:28 UTC",
                "Action requise\u{a0}: veuillez confirmer votre adresse e-mail pour example.com",
                "suspendu",
                "Confirmer mon adresse e-mail",
            ),
            (
                "es",
                "23 de enero de 2027, 12:28 UTC",
                "Acción necesaria: confirme su dirección de correo electrónico para example.com",
                "suspendido",
                "Confirmar mi dirección de correo",
            ),
        ];
        for (lang, date, subject, consequence, button) in cases {
            let r = render(Notice::Verification, &ctx(&["example.com"], Some(lang)));
            assert_eq!(r.subject, subject);
            for part in [&r.text, &r.html] {
                for needle in ["a@example.com", "example.com", LINK, date, consequence] {
                    assert!(
                        part.contains(needle),
                        "{lang}: {needle} missing from {part}"
                    );
                }
                assert!(!part.contains("January"), "{lang}: {part}");
            }
            assert!(
                r.html.contains(&format!(">{button}</a>")),
                "{lang}: {}",
                r.html
            );
            assert!(r.html.contains(&format!("<html lang=\"{lang}\">")));
            assert!(
                overlong(&r.text).is_empty(),
                "{lang}: {:?}",
                overlong(&r.text)
            );
        }
        let de = render(
            Notice::Reminder { day: 3 },
            &ctx(&["example.com"], Some("de-AT")),
        );
        assert!(
            flat(&de.text).contains(" Sie ") && !flat(&de.text).contains(" du "),
            "{}",
            de.text
        );
        let fr = render(Notice::ExpiryNotice, &ctx(&["example.com"], Some("fr")));
        assert!(
            flat(&fr.text).contains("vous") && !flat(&fr.text).contains(" tu "),
            "{}",
            fr.text
        );
        let es = render(Notice::ExpiryNotice, &ctx(&["example.com"], Some("es")));
        assert!(
            flat(&es.text).contains("le enviamos") && !flat(&es.text).contains(" tu "),
            "{}",
            es.text
        );
    }

    #[test]
    fn an_unknown_language_without_templates_is_written_in_english() {
        let r = render(Notice::Verification, &ctx(&["example.com"], Some("pt-BR")));
        assert!(r.subject.starts_with("Action required"), "{}", r.subject);
        assert!(r.text.contains("23 January 2027, 12:28 UTC"));
        assert!(r.html.contains("<html lang=\"en\">"));
    }

    #[test]
    fn templates_dir_adds_a_language_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("verification.it.txt"),
            "Gentile cliente, confermi {{ email }}: {{ link }} ({{ plural(domains | length, 'dominio', 'domini') }})",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("verification.subject.it.txt"),
            "Confermi il suo indirizzo per {{ domains | first }}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render(Notice::Verification, &ctx(&["example.it"], Some("it-CH")))
            .unwrap();
        assert_eq!(r.subject, "Confermi il suo indirizzo per example.it");
        assert_eq!(
            r.text,
            format!("Gentile cliente, confermi a@example.com:\n{LINK}\n(dominio)")
        );
        // No Italian HTML part: that one file kind falls back to English.
        assert!(r.html.contains("Confirm my email address"), "{}", r.html);
        let en = t
            .render(Notice::Verification, &ctx(&["example.it"], None))
            .unwrap();
        assert!(en.subject.starts_with("Action required"));
    }

    #[test]
    fn branding_names_the_registrar_its_logo_and_where_to_get_help() {
        let mut c = ctx(&["example.com"], None);
        c.branding = BrandingSettings {
            name: "Example Registrar".into(),
            support_email: "help@registrar.example".into(),
            support_url: "https://registrar.example/help".into(),
            logo_url: "https://cdn.registrar.example/logo.png".into(),
        };
        let r = render(Notice::Verification, &c);
        assert!(r.html.contains(
            "<img src=\"https://cdn.registrar.example/logo.png\" alt=\"Example Registrar\" style=\"display:block;max-width:100%;"
        ), "{}", r.html);
        assert!(r.html.contains("<a href=\"mailto:help@registrar.example\""));
        assert!(r
            .html
            .contains("<a href=\"https://registrar.example/help\""));
        assert!(flat(&r.text).contains(
            "Need help? Write to help@registrar.example or visit https://registrar.example/help."
        ), "{}", r.text);
        assert!(flat(&r.text).contains("Example Registrar needs to confirm"));

        c.branding.support_url.clear();
        let r = render(Notice::Verification, &c);
        assert!(flat(&r.text).contains("Need help? Write to help@registrar.example."));
        c.branding.support_email.clear();
        c.branding.logo_url.clear();
        let r = render(Notice::Verification, &c);
        assert!(
            flat(&r.text).contains("Need help? Please contact Example Registrar."),
            "{}",
            r.text
        );
        assert!(!r.html.contains("<img"), "no logo when none is set");
    }

    #[test]
    fn the_expiry_notice_carries_the_expired_link_and_says_how_to_get_a_new_one() {
        for (lang, needle) in [
            (None, "Send me a new link"),
            (Some("de"), "Neuen Link zusenden"),
            (Some("fr"), "M'envoyer un nouveau lien"),
            (Some("es"), "Enviarme un enlace nuevo"),
        ] {
            let e = render(Notice::ExpiryNotice, &ctx(&["example.com"], lang));
            assert!(flat(&e.text).contains(needle), "{lang:?}: {}", e.text);
            assert!(e.text.lines().any(|l| l == LINK), "{lang:?}: {}", e.text);
            assert!(e.html.contains(&format!("<a href=\"{LINK}\"")), "{lang:?}");
            assert!(e.text.contains("suspend") || e.text.contains("gesperrt"));
        }
        let e = render(Notice::ExpiryNotice, &ctx(&["example.com"], None));
        assert!(
            flat(&e.text).contains("expired on 23 January 2027, 12:28 UTC"),
            "{}",
            e.text
        );
        assert!(
            flat(&e.text).contains("Need help? Please contact Registrar."),
            "{}",
            e.text
        );
    }

    #[test]
    fn the_plain_text_is_wrapped_at_72_columns_without_breaking_links_or_lists() {
        let mut c = ctx(
            &["a-rather-long-domain-name-that-keeps-going-and-going-on.example"],
            None,
        );
        c.branding.name = "A Registrar With A Name Long Enough To Push Lines Over".into();
        c.link = format!("{LINK}{}", "x".repeat(40));
        for notice in [
            Notice::Verification,
            Notice::Reminder { day: 3 },
            Notice::ExpiryNotice,
        ] {
            let r = render(notice, &c);
            assert!(
                overlong(&r.text).iter().all(|l| l.starts_with("  - ")),
                "{:?}",
                overlong(&r.text)
            );
            assert!(r.text.lines().any(|l| l == c.link), "{}", r.text);
            assert!(r.text.contains("\n\n"), "blank lines kept");
            assert!(
                r.text.contains("\n-- \n"),
                "signature separator kept: {}",
                r.text
            );
        }
    }

    #[test]
    fn wrapping_breaks_at_spaces_only_and_keeps_special_lines() {
        let long = "word ".repeat(30);
        let text = format!(
            "{long}\n\n  - {long}\n- {long}\n-- \nhttps://example.com/{}\nshort",
            "y".repeat(80)
        );
        let w = wrap_text(&text, 72);
        let lines: Vec<&str> = w.lines().collect();
        assert_eq!(lines[0].len(), 69, "{w}");
        assert_eq!(lines[1].len(), 69, "{w}");
        assert_eq!(lines[2], "word word");
        assert_eq!(lines[3], "");
        assert_eq!(lines[4], format!("  - {long}"));
        assert_eq!(lines[5], format!("- {long}"));
        assert_eq!(lines[6], "-- ");
        assert_eq!(lines[7].len(), 20 + 80);
        assert_eq!(lines[8], "short");
        let dated = format!(
            "{} expired on 30 November 2026, 13:08 UTC (encore 1 jour).",
            "x".repeat(40)
        );
        assert_eq!(
            wrap_text(&dated, 72),
            format!(
                "{} expired on 30 November 2026,\n13:08 UTC (encore 1 jour).",
                "x".repeat(40)
            ),
            "numbers stay with their words, UTC with its time"
        );
        let dated = format!("{} (encore 1 jour).", "x".repeat(60));
        assert_eq!(
            wrap_text(&dated, 72),
            format!("{} (encore\n1 jour).", "x".repeat(60))
        );
        let umlauts = "Bestätigung ".repeat(10);
        assert!(wrap_text(&umlauts, 72)
            .lines()
            .all(|l| l.chars().count() <= 72));
    }

    #[test]
    fn html_part_escapes_what_it_interpolates() {
        let mut c = ctx(&["example.com"], None);
        c.branding.name = "<script>x</script>".into();
        let r = render(Notice::Verification, &c);
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
            .render(Notice::Reminder { day: 3 }, &ctx(&["example.com"], None))
            .unwrap();
        assert_eq!(r.subject, "Custom a@example.com");
        assert!(r.text.contains("reminder"));
        let de = t
            .render(
                Notice::Reminder { day: 3 },
                &ctx(&["example.com"], Some("de")),
            )
            .unwrap();
        assert!(de.subject.starts_with("Erinnerung"), "{}", de.subject);
    }

    #[test]
    fn a_broken_override_is_a_configuration_error_naming_the_file() {
        for file in [
            "expiry.txt",
            "expiry.es.html",
            "verification.nl.txt",
            "page.it.html",
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(file), "{% if %}").unwrap();
            let e = Templates::load(Some(dir.path())).err().unwrap();
            assert_eq!(e.code, crate::ErrorCode::Configuration);
            assert!(e.message.contains(file), "{}", e.message);
        }
    }
}
