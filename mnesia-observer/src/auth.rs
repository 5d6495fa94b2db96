//! The token rule: with a token set, every request carries it (`Authorization: Bearer`, or
//! `?token=` for the page and the event stream, which a browser opens by address); a
//! request without it, or with another, gets 401. Without a token (on loopback), a request
//! must name a loopback host: a web page whose name was rebound to 127.0.0.1 (DNS
//! rebinding) sends its own name and is refused.

use axum::http::{HeaderMap, StatusCode, header};

/// Whether a request with these headers and this query string may be answered.
pub(crate) fn allowed(token: Option<&str>, headers: &HeaderMap, query: Option<&str>) -> bool {
    let Some(token) = token else { return loopback_host(headers) };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let in_query = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("token="));
    bearer.is_some_and(|b| same(b.as_bytes(), token.as_bytes()))
        || in_query.is_some_and(|q| same(percent_decoded(q).as_bytes(), token.as_bytes()))
}

/// Whether the request names a loopback host (`localhost`, `127.x.x.x`, `[::1]`, with any
/// port). A request without a `Host` header (not sent by browsers) passes.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else { return true };
    let Ok(host) = host.to_str() else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
                let digits = &bytes[i + 1..i + 3];
                let hex = (digits.iter().all(u8::is_ascii_hexdigit))
                    .then(|| std::str::from_utf8(digits).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
                    .flatten();
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
    fn without_a_token_the_host_must_be_loopback() {
        let host = |h: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, h.parse().expect("header"));
            allowed(None, &headers, None)
        };
        for ok in ["127.0.0.1:8080", "localhost:1", "LOCALHOST", "[::1]:80", "127.1.2.3"] {
            assert!(host(ok), "{ok}");
        }
        for refused in ["evil.example", "evil.example:8080", "10.0.0.1:80", "[::2]:80", "localhost.evil:1"] {
            assert!(!host(refused), "{refused}");
        }
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "bearer t0k".parse().expect("header"));
        assert!(allowed(Some("t0k"), &bearer, None), "the scheme's case does not matter");
    }

    proptest::proptest! {
        /// Any query value, escaped as a browser escapes it, decodes back to itself; any
        /// bytes at all decode without a panic.
        #[test]
        fn escaped_values_decode_to_themselves(value in ".*", junk in ".*") {
            let escaped: String = value
                .bytes()
                .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            proptest::prop_assert_eq!(percent_decoded(&escaped), value);
            let _ = percent_decoded(&junk);
        }

        /// Any `Host` header is judged without a panic, and only loopback names pass.
        #[test]
        fn any_host_is_judged(host in "[ -~]{0,40}") {
            let mut headers = HeaderMap::new();
            if let Ok(v) = host.parse() {
                headers.insert(header::HOST, v);
                if allowed(None, &headers, None) {
                    let lower = host.to_ascii_lowercase();
                    proptest::prop_assert!(lower.starts_with("localhost") || lower.starts_with("127.") || lower.starts_with("[::1]") || lower.starts_with("::1") || lower.starts_with("0:0:0:0:0:0:0:1") || lower.starts_with("[0:"), "{}", host);
                }
            }
        }
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decoded("%+F"), "% F", "a sign is no hex digit");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
        assert_eq!(percent_decoded("%41%"), "A%");
    }
}
