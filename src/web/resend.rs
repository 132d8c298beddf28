//! What the sign-in page says after a password or code went out: where it went (masked, so a
//! forwarded link does not reveal the recipient's address or number) and how many more sends
//! the limit allows, or when the next one can go.

use super::auth::{Auth, AuthError, Link, LinkState, RESEND_WINDOW, RESENDS, link_key};
use crate::queue::now;
use crate::store::StateKind;

/// Sends in the current window: how many are left and, when none, seconds until the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sends {
    pub left: u32,
    pub wait: i64,
}

impl Auth {
    /// `None` when nothing was sent in the current window (the page shows the first button).
    pub fn sends(&self, link: Link) -> Result<Option<Sends>, AuthError> {
        let now = now();
        let Some(raw) = self.meta.state_get(StateKind::Link, &link_key(link), now)? else {
            return Ok(None);
        };
        let s: LinkState = serde_json::from_slice(&raw)?;
        if s.resends == 0 || now - s.resend_from >= RESEND_WINDOW {
            return Ok(None);
        }
        let left = RESENDS.saturating_sub(s.resends);
        let wait = if left == 0 {
            s.resend_from + RESEND_WINDOW - now
        } else {
            0
        };
        Ok(Some(Sends { left, wait }))
    }
}

/// `jan.jansen@example.nl` -> `j***@e***.nl`: enough to recognise, not to learn.
pub fn mask_address(addr: &str) -> String {
    let (local, domain) = addr.rsplit_once('@').unwrap_or((addr, ""));
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let mut out = format!("{}***", first(local));
    if !domain.is_empty() {
        let (name, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
        out.push_str(&format!("@{}***", first(name)));
        if !tld.is_empty() {
            out.push('.');
            out.push_str(tld);
        }
    }
    out
}

/// `+31612345678` -> `+31 6 ** ** ** 78`; other numbers keep the country prefix and the last two
/// digits.
pub fn mask_phone(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let plus = if phone.trim_start().starts_with('+') {
        "+"
    } else {
        ""
    };
    if digits.len() < 6 {
        return "** **".into();
    }
    let last = &digits[digits.len() - 2..];
    let head = if plus.is_empty() {
        digits[..2].to_string()
    } else if digits.starts_with("31") {
        format!("+31 {}", &digits[2..3])
    } else {
        format!("+{}", &digits[..2])
    };
    format!("{head} ** ** ** {last}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::auth::tests::{auth, link};

    #[test]
    fn masks() {
        assert_eq!(mask_address("jan.jansen@example.nl"), "j***@e***.nl");
        assert_eq!(mask_address("a@mail.example.co.uk"), "a***@m***.uk");
        assert_eq!(mask_address("root@localhost"), "r***@l***");
        assert_eq!(mask_phone("+31612345678"), "+31 6 ** ** ** 78");
        assert_eq!(mask_phone("+44 7700 900123"), "+44 ** ** ** 23");
        assert_eq!(mask_phone("0612345678"), "06 ** ** ** 78");
        assert_eq!(mask_phone("123"), "** **");
    }

    #[test]
    fn sends_left_and_wait() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth(dir.path());
        assert_eq!(a.sends(link(1)).unwrap(), None);
        a.may_send(link(1)).unwrap().unwrap();
        assert_eq!(a.sends(link(1)).unwrap(), Some(Sends { left: 2, wait: 0 }));
        for _ in 1..RESENDS {
            a.may_send(link(1)).unwrap().unwrap();
        }
        let s = a.sends(link(1)).unwrap().unwrap();
        assert_eq!(s.left, 0);
        assert!(s.wait > RESEND_WINDOW - 5 && s.wait <= RESEND_WINDOW);
    }
}
