//! HTTP plumbing for the portal: one response type with the security headers every page gets,
//! cookies, forms, and RFC 6266 file names.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;

/// No inline script anywhere, no framing by others, nothing loaded from elsewhere.
pub const CSP_PAGE: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
script-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The sender's HTML, shown in a sandboxed frame: no script, no remote content, no forms.
pub const CSP_BODY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
sandbox; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn secure_headers(h: &mut HeaderMap, csp: &str) {
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &str| {
        h.insert(k, HeaderValue::from_str(v).expect("static header"));
    };
    set(h, header::CONTENT_SECURITY_POLICY, csp);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
}

/// A response with the portal's headers; private pages (all but static files) are `no-store`.
pub fn respond(status: StatusCode, content_type: &str, body: Body, private: bool) -> Resp {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    secure_headers(h, CSP_PAGE);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("content type"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if private {
            "no-store"
        } else {
            "public, max-age=3600"
        }),
    );
    r
}

pub fn html(status: StatusCode, page: String) -> Resp {
    respond(status, "text/html; charset=utf-8", full(page), true)
}

pub fn text(status: StatusCode, s: &'static str) -> Resp {
    respond(status, "text/plain; charset=utf-8", full(s), true)
}

/// The one answer for every token that opens nothing: it says nothing more.
pub fn not_found() -> Resp {
    text(StatusCode::NOT_FOUND, "Not found\n")
}

pub fn redirect(to: &str) -> Resp {
    let mut r = respond(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        full(""),
        true,
    );
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
    );
    r
}

pub fn with_csp(mut r: Resp, csp: &str) -> Resp {
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(csp).expect("csp"),
    );
    r
}

pub fn set_cookie(r: &mut Resp, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub fn cookies(h: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for v in h.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                out.entry(k.trim().to_string())
                    .or_insert_with(|| v.trim().to_string());
            }
        }
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decoding of `application/x-www-form-urlencoded` (and query strings).
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn form(body: &[u8]) -> HashMap<String, String> {
    let s = String::from_utf8_lossy(body);
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

/// `Content-Disposition: attachment` with an ASCII fallback and the exact name as RFC 5987
/// `filename*`; quotes, backslashes and control characters never reach the header.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut enc = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{enc}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_decode() {
        let f = form(b"password=a%2Bb+c&csrf=x%3D&empty=&bad=%zz%4");
        assert_eq!(f["password"], "a+b c");
        assert_eq!(f["csrf"], "x=");
        assert_eq!(f["empty"], "");
        assert_eq!(f["bad"], "%zz%4");
    }

    #[test]
    fn hostile_file_names_stay_inside_the_header() {
        let cd = content_disposition("a\"b\r\nSet-Cookie: x=1\u{202e}fdp.exe");
        assert!(!cd.contains('\r') && !cd.contains('\n'));
        assert!(
            cd.starts_with("attachment; filename=\"a_b__Set-Cookie: x=1_fdp.exe\""),
            "{cd}"
        );
        assert!(cd.contains("filename*=UTF-8''a%22b%0D%0ASet-Cookie%3A%20x%3D1%E2%80%AEfdp.exe"));
        assert!(HeaderValue::from_str(&cd).is_ok());
        let cd = content_disposition("rapport 2026 – definitief.pdf");
        assert!(
            cd.contains("filename=\"rapport 2026 _ definitief.pdf\""),
            "{cd}"
        );
    }

    #[test]
    fn cookies_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sluis_lang=en"),
        );
        let c = cookies(&h);
        assert_eq!(c["sluis_lang"], "en");
    }
}
