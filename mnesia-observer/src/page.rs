//! The observer's page: one HTML document with its style and script inline, drawing its
//! plots as SVG itself (nothing is fetched from elsewhere, at build or at run time).

/// The page served at `/`.
pub(crate) const HTML: &str = include_str!("page.html");
