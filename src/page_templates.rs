//! The confirmation pages' templates, built in and from `templates.dir`:
//! below both the pages that render them and the start-up check that
//! refuses a broken one (with the email templates, `mail::templates`).

use std::path::Path;

use crate::i18n::Catalog;
use crate::Result;

/// Every built-in page file: one per language, each holding every kind of
/// page, on one layout.
const BUILTIN: &[(&str, &str)] = &[
    (
        "page-layout.html",
        include_str!("api/templates/page-layout.html"),
    ),
    ("page.html", include_str!("api/templates/page.html")),
    ("page.de.html", include_str!("api/templates/page.de.html")),
    ("page.fr.html", include_str!("api/templates/page.fr.html")),
    ("page.es.html", include_str!("api/templates/page.es.html")),
];

/// The one page template (its kinds are chosen inside it).
pub const PAGE: &str = "page.html";

/// The page templates: built-in, then `templates.dir` (which may replace
/// them or add `page.LANG.html` for any language).
pub fn load(dir: Option<&Path>) -> Result<Catalog> {
    Catalog::load(BUILTIN, &[PAGE], dir)
}
