//! The token rule: with a token set, every request carries it (`Authorization: Bearer`, or
//! `?token=` for the page and the event stream, which a browser opens by address); a
//! request without it, or with another, gets 401.

use axum::http::{HeaderMap, StatusCode, header};

/// Whether a request with these headers and this query string may be answered.
pub(crate) fn allowed(token: Option<&str>, headers: &HeaderMap, query: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let in_query = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("token="));
    bearer.is_some_and(|b| same(b.as_bytes(), token.as_bytes()))
        || in_query.is_some_and(|q| same(percent_decoded(q).as_bytes(), token.as_bytes()))
}

/// The status a refused request gets.
pub(crate) const REFUSED: StatusCode = StatusCode::UNAUTHORIZED;

/// Compares in time that depends on the lengths only, not on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `%XX` escapes and `+` of a query value decoded (a malformed escape is kept as it is).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_required_once_set() {
        let none = HeaderMap::new();
        assert!(allowed(None, &none, None));
        assert!(!allowed(Some("t0k"), &none, None));
        assert!(!allowed(Some("t0k"), &none, Some("token=t0")));
        assert!(allowed(Some("t0k"), &none, Some("limit=3&token=t0k")));
        assert!(allowed(Some("a b/c"), &none, Some("token=a+b%2Fc")));
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer t0k".parse().expect("header"));
        assert!(allowed(Some("t0k"), &bearer, None));
        assert!(!allowed(Some("t0kk"), &bearer, None));
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
        assert_eq!(percent_decoded("%41%"), "A%");
    }
}
