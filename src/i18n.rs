//! What registrants read, in their language (CONTRACT section 9): dates as
//! people write them, singular and plural, the best language for a browser's
//! `Accept-Language`, and [`Catalog`], the localized templates (built-in, then
//! `templates.dir`) that emails and pages are rendered from.
//!
//! Templates are named `NAME.EXT` (English) and `NAME.LANG.EXT` for every
//! other language; a tag `pt-BR` looks for `NAME.pt-BR.EXT`, then
//! `NAME.pt.EXT`, then English.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Datelike, Timelike, Utc};
use minijinja::{Environment, State, Value};

use crate::domain::Language;
use crate::{Error, Result};

/// The language of last resort, and of the `NAME.EXT` templates.
pub const ENGLISH: &str = "en";

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS_ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];

/// The primary subtag of a tag, lowercased: `pt` of `pt-BR`.
fn primary(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The one date format of every email and page, to the minute and with the
/// zone: `23 January 2027, 12:28 UTC`, `23. Januar 2027, 12:28 UTC`,
/// `23 janvier 2027, 12:28 UTC`, `23 de enero de 2027, 12:28 UTC`. Tags
/// without month names of their own get the English form.
pub fn format_date(t: DateTime<Utc>, lang: &str) -> String {
    let (d, y, m) = (t.day(), t.year(), t.month0() as usize);
    let time = format!("{:02}:{:02} UTC", t.hour(), t.minute());
    match primary(lang).as_str() {
        "de" => format!("{d}. {} {y}, {time}", MONTHS_DE[m]),
        // French writes the first of the month as an ordinal: « 1er mars ».
        "fr" if d == 1 => format!("1er {} {y}, {time}", MONTHS_FR[m]),
        "fr" => format!("{d} {} {y}, {time}", MONTHS_FR[m]),
        "es" => format!("{d} de {} de {y}, {time}", MONTHS_ES[m]),
        _ => format!("{d} {} {y}, {time}", MONTHS_EN[m]),
    }
}

/// Whether `n` takes the singular form: French counts 0 and 1 as singular
/// ("0 jour", "1 jour"); English, German and Spanish only 1. Other tags
/// follow English; their templates may spell their own rules out.
pub fn is_singular(n: i64, lang: &str) -> bool {
    match primary(lang).as_str() {
        "fr" => n == 0 || n == 1,
        _ => n == 1,
    }
}

/// The language in `available` that best matches an `Accept-Language`
/// header: by q-value (ties in the header's order), an exact tag first, then
/// the same primary language (`de-CH` finds `de`, `pt` finds `pt-BR`).
/// `None` when nothing acceptable is available; `*` picks nothing, which
/// leaves the caller's default.
pub fn negotiate(header: &str, available: &[String]) -> Option<String> {
    let mut wanted: Vec<(f32, usize, &str)> = Vec::new();
    for (i, item) in header.split(',').enumerate() {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        if tag.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")) {
                q = v.trim().parse().unwrap_or(-1.0);
            }
        }
        // q=0 means "not this one"; a malformed q is ignored with its tag.
        if q > 0.0 && q <= 1.0 {
            wanted.push((q, i, tag));
        }
    }
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, tag) in wanted {
        if tag == "*" {
            return None;
        }
        if let Some(a) = available.iter().find(|a| a.eq_ignore_ascii_case(tag)) {
            return Some(a.clone());
        }
        let p = primary(tag);
        if let Some(a) = available.iter().find(|a| a.eq_ignore_ascii_case(&p)) {
            return Some(a.clone());
        }
        if let Some(a) = available.iter().find(|a| primary(a) == p) {
            return Some(a.clone());
        }
    }
    None
}

/// A configured URL or address for an HTML attribute: the characters that
/// matter to HTML escaped, and nothing else (the template engine's own
/// escaping writes every `/` as `&#x2f;`, which is right but unreadable in
/// a page's source and in mail clients' "view source").
pub fn html_attr(s: &str) -> Value {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Value::from_safe_string(out)
}

/// Splits `verification.subject.txt` into `("verification.subject", "txt")`.
fn split_ext(name: &str) -> (&str, &str) {
    name.rsplit_once('.').unwrap_or((name, ""))
}

/// A set of templates in several languages, every one compiled when loaded.
pub struct Catalog {
    env: Environment<'static>,
    /// For each localizable `NAME.EXT`, the languages that have their own
    /// `NAME.LANG.EXT` (English, the `NAME.EXT` itself, not listed).
    languages: BTreeMap<String, BTreeSet<String>>,
}

impl Catalog {
    /// `builtin` holds every built-in file (`NAME.EXT`, `NAME.LANG.EXT`, and
    /// shared ones such as layouts); `localized` names the `NAME.EXT` that
    /// exist per language. A file of `dir` with a built-in's name replaces
    /// it, and a `NAME.LANG.EXT` of a localized name adds (or replaces) that
    /// language. Anything else in `dir` is not ours and is left alone.
    pub fn load(
        builtin: &[(&str, &'static str)],
        localized: &[&str],
        dir: Option<&Path>,
    ) -> Result<Catalog> {
        let mut sources: BTreeMap<String, (String, Option<std::path::PathBuf>)> = builtin
            .iter()
            .map(|(name, src)| (name.to_string(), (src.to_string(), None)))
            .collect();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                Error::config(format!("templates.dir: cannot list {}: {e}", dir.display()))
            })?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    Error::config(format!("templates.dir: cannot list {}: {e}", dir.display()))
                })?;
                let path = entry.path();
                let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                let Some(name) = dir_name(file, builtin, localized)? else {
                    continue;
                };
                if !path.is_file() {
                    continue;
                }
                let source = std::fs::read_to_string(&path).map_err(|e| {
                    Error::config(format!(
                        "templates.dir: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                sources.insert(name, (source, Some(path)));
            }
        }
        let mut env = Environment::new();
        env.add_function("plural", plural);
        let mut languages: BTreeMap<String, BTreeSet<String>> = localized
            .iter()
            .map(|n| (n.to_string(), BTreeSet::new()))
            .collect();
        for (name, (source, path)) in sources {
            let shown = path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("{name} (built in)"));
            if let Some((base, lang)) = localized_name(&name, localized) {
                languages.entry(base).or_default().insert(lang);
            }
            env.add_template_owned(name, source).map_err(|e| {
                Error::config(format!(
                    "templates.dir: template {shown} does not compile: {e}"
                ))
            })?;
        }
        Ok(Catalog { env, languages })
    }

    /// The languages `NAME.EXT` is written in, English first.
    pub fn languages(&self, name: &str) -> Vec<String> {
        let mut all = vec![ENGLISH.to_string()];
        if let Some(set) = self.languages.get(name) {
            all.extend(set.iter().cloned());
        }
        all
    }

    /// The template to use for `NAME.EXT` in `lang`, and the language it is
    /// written in: `NAME.pt-BR.EXT`, `NAME.pt.EXT`, then `NAME.EXT` (English).
    pub fn pick(&self, name: &str, lang: Option<&Language>) -> (String, String) {
        let (stem, ext) = split_ext(name);
        if let (Some(lang), Some(have)) = (lang, self.languages.get(name)) {
            for tag in [lang.as_str(), lang.primary()] {
                if have.contains(tag) {
                    return (format!("{stem}.{tag}.{ext}"), tag.to_string());
                }
            }
        }
        (name.to_string(), ENGLISH.to_string())
    }

    /// Renders one template with `ctx` (which should carry `lang`, for
    /// `plural`). HTML templates (`.html`) escape what they interpolate.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| Error::internal(format!("cannot render template {name}: {e:#}")))
    }
}

/// What a file of `templates.dir` is to us: the template it replaces or
/// adds, `None` when it is none of ours. A `NAME.LANG.EXT` whose `LANG` is
/// not a language tag is a mistake worth stopping for.
fn dir_name(file: &str, builtin: &[(&str, &str)], localized: &[&str]) -> Result<Option<String>> {
    if builtin.iter().any(|(n, _)| *n == file) {
        return Ok(Some(file.to_string()));
    }
    let (stem_lang, ext) = split_ext(file);
    for name in localized {
        let (stem, want_ext) = split_ext(name);
        let Some(tag) = stem_lang
            .strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            continue;
        };
        if ext != want_ext || tag.contains('.') {
            continue;
        }
        let lang = Language::parse(tag)
            .map_err(|e| Error::config(format!("templates.dir: {file}: {}", e.message)))?;
        // `NAME.en.EXT` is English, which `NAME.EXT` is.
        return Ok(Some(if lang.as_str() == ENGLISH {
            name.to_string()
        } else {
            format!("{stem}.{lang}.{ext}")
        }));
    }
    Ok(None)
}

/// `("verification.txt", "de")` for `verification.de.txt`.
fn localized_name(name: &str, localized: &[&str]) -> Option<(String, String)> {
    let (stem_lang, ext) = split_ext(name);
    localized.iter().find_map(|base| {
        let (stem, want_ext) = split_ext(base);
        let tag = stem_lang.strip_prefix(stem)?.strip_prefix('.')?;
        (ext == want_ext && !tag.contains('.')).then(|| (base.to_string(), tag.to_string()))
    })
}

/// `{{ plural(n, "day", "days") }}`: the form for `n` in the template's
/// language (the `lang` it is rendered with).
fn plural(state: &State, n: i64, one: Value, other: Value) -> Value {
    let lang = state
        .lookup("lang")
        .and_then(|l| l.as_str().map(str::to_string))
        .unwrap_or_else(|| ENGLISH.to_string());
    if is_singular(n, &lang) {
        one
    } else {
        other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn one_date_format_per_language_with_the_zone() {
        let t = at("2027-01-23T12:28:59Z");
        assert_eq!(format_date(t, "en"), "23 January 2027, 12:28 UTC");
        assert_eq!(format_date(t, "de"), "23. Januar 2027, 12:28 UTC");
        assert_eq!(format_date(t, "fr"), "23 janvier 2027, 12:28 UTC");
        assert_eq!(format_date(t, "es"), "23 de enero de 2027, 12:28 UTC");
        assert_eq!(format_date(t, "de-AT"), "23. Januar 2027, 12:28 UTC");
        assert_eq!(
            format_date(t, "it"),
            "23 January 2027, 12:28 UTC",
            "English for tags without month names"
        );
        let first = at("2027-03-01T08:05:00Z");
        assert_eq!(format_date(first, "fr"), "1er mars 2027, 08:05 UTC");
        assert_eq!(format_date(first, "de"), "1. März 2027, 08:05 UTC");
    }

    #[test]
    fn french_counts_zero_as_singular_the_others_do_not() {
        for lang in ["en", "de", "es", "it"] {
            assert!(is_singular(1, lang));
            assert!(!is_singular(0, lang));
            assert!(!is_singular(2, lang));
        }
        assert!(is_singular(0, "fr") && is_singular(1, "fr") && !is_singular(2, "fr"));
    }

    #[test]
    fn accept_language_honours_q_values_and_primary_languages() {
        let have: Vec<String> = ["en", "de", "es", "fr", "pt-BR"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let n = |h: &str| negotiate(h, &have);
        assert_eq!(n("de-CH,de;q=0.9,en;q=0.8").as_deref(), Some("de"));
        assert_eq!(n("en;q=0.5, fr;q=0.9").as_deref(), Some("fr"));
        assert_eq!(n("it, es;q=0.3").as_deref(), Some("es"));
        assert_eq!(n("pt").as_deref(), Some("pt-BR"));
        assert_eq!(n("FR-ca").as_deref(), Some("fr"));
        assert_eq!(n("es;q=0, it").as_deref(), None, "q=0 refuses");
        assert_eq!(n("it, *;q=0.1"), None);
        assert_eq!(n(""), None);
        assert_eq!(n("de;q=abc, es").as_deref(), Some("es"));
    }

    const BUILTIN: &[(&str, &str)] = &[
        (
            "greeting.txt",
            "Hello {{ name }}, {{ n }} {{ plural(n, 'day', 'days') }}",
        ),
        ("greeting.de.txt", "Hallo {{ name }}"),
        ("layout.html", "<p>{% block body %}{% endblock %}</p>"),
    ];

    #[test]
    fn a_tag_falls_back_to_its_primary_language_then_english() {
        let c = Catalog::load(BUILTIN, &["greeting.txt"], None).unwrap();
        let lang = |s: &str| Language::parse(s).unwrap();
        assert_eq!(
            c.pick("greeting.txt", Some(&lang("de-AT"))),
            ("greeting.de.txt".to_string(), "de".to_string())
        );
        assert_eq!(
            c.pick("greeting.txt", Some(&lang("pt-BR"))),
            ("greeting.txt".to_string(), "en".to_string())
        );
        assert_eq!(c.pick("greeting.txt", None).0, "greeting.txt");
        assert_eq!(c.languages("greeting.txt"), ["en", "de"]);
        let ctx = minijinja::context! { name => "Ann", n => 1, lang => "en" };
        assert_eq!(c.render("greeting.txt", &ctx).unwrap(), "Hello Ann, 1 day");
    }

    #[test]
    fn the_directory_adds_languages_and_replaces_files_it_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("greeting.pt-br.txt"), "Olá {{ name }}").unwrap();
        std::fs::write(dir.path().join("greeting.pt.txt"), "Olá (pt)").unwrap();
        std::fs::write(dir.path().join("greeting.de.txt"), "Servus {{ name }}").unwrap();
        std::fs::write(dir.path().join("README"), "not a template {% if").unwrap();
        std::fs::write(dir.path().join("layout.de.html"), "ignored {% if").unwrap();
        let c = Catalog::load(BUILTIN, &["greeting.txt"], Some(dir.path())).unwrap();
        let ctx = minijinja::context! { name => "Ann" };
        let lang = |s: &str| Language::parse(s).unwrap();
        let (name, l) = c.pick("greeting.txt", Some(&lang("pt-BR")));
        assert_eq!((name.as_str(), l.as_str()), ("greeting.pt-BR.txt", "pt-BR"));
        assert_eq!(c.render(&name, &ctx).unwrap(), "Olá Ann");
        let (name, _) = c.pick("greeting.txt", Some(&lang("pt-PT")));
        assert_eq!(c.render(&name, &ctx).unwrap(), "Olá (pt)");
        let (name, _) = c.pick("greeting.txt", Some(&lang("de")));
        assert_eq!(c.render(&name, &ctx).unwrap(), "Servus Ann");
        assert_eq!(c.languages("greeting.txt"), ["en", "de", "pt", "pt-BR"]);
    }

    #[test]
    fn a_malformed_language_in_a_file_name_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("greeting.d3.txt"), "x").unwrap();
        let e = Catalog::load(BUILTIN, &["greeting.txt"], Some(dir.path()))
            .err()
            .unwrap();
        assert_eq!(e.code, crate::ErrorCode::Configuration);
        assert!(e.message.contains("greeting.d3.txt"), "{}", e.message);
    }
}
