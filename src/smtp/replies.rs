//! Every reply sluis's SMTP server gives, in one place: what the client is told.
//! What is logged stays with the caller; a reply never carries internal error text.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Greeting {
        host: String,
    },
    HeloOk {
        host: String,
    },
    Ok,
    MailOk,
    RcptOk,
    StartData,
    Queued {
        id: String,
    },
    /// Protected before the reply: only the rewritten copies were queued (crate::admit).
    Protected {
        id: String,
    },
    ChunkOk {
        octets: usize,
    },
    Bye,
    Vrfy,
    Help,
    StartTls,
    TlsUnavailable,
    AlreadyTls,
    TlsRequired,
    UnknownCommand,
    SyntaxError(&'static str),
    UnsupportedParameter(String),
    BadSequence(&'static str),
    LineTooLong,
    RelayDenied {
        rcpt: String,
    },
    BadAddress(&'static str),
    InvalidAddress,
    TooManyRecipients,
    MessageTooBig,
    HeaderTooBig {
        max: u64,
    },
    BareLineEnding,
    TextLineTooLong {
        max: usize,
    },
    Loop,
    InsufficientStorage,
    LocalError,
    Timeout {
        host: String,
    },
    TooManyConnections,
    TooManyMessages,
    ShuttingDown {
        host: String,
    },
    NoValidRecipients,
    Utf8Required,
}

impl Reply {
    pub fn code(&self) -> u16 {
        self.parts().0
    }

    /// (code, enhanced status, text)
    fn parts(&self) -> (u16, &'static str, String) {
        use Reply::*;
        match self {
            Greeting { host } => (220, "", format!("{host} ESMTP sluis")),
            HeloOk { host } => (250, "", host.clone()),
            Ok => (250, "2.0.0", "OK".into()),
            MailOk => (250, "2.1.0", "Sender OK".into()),
            RcptOk => (250, "2.1.5", "Recipient OK".into()),
            StartData => (354, "", "End data with <CR><LF>.<CR><LF>".into()),
            Queued { id } | Protected { id } => (250, "2.0.0", format!("OK queued as {id}")),
            ChunkOk { octets } => (250, "2.0.0", format!("{octets} octets received")),
            Bye => (221, "2.0.0", "Bye".into()),
            Vrfy => (
                252,
                "2.5.2",
                "Cannot VRFY user, but will accept message and attempt delivery".into(),
            ),
            Help => (
                214,
                "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS".into(),
            ),
            StartTls => (220, "2.0.0", "Ready to start TLS".into()),
            TlsUnavailable => (454, "4.7.0", "TLS not available".into()),
            AlreadyTls => (503, "5.5.1", "TLS already active".into()),
            TlsRequired => (530, "5.7.0", "Must issue a STARTTLS command first".into()),
            UnknownCommand => (500, "5.5.1", "Command unrecognized".into()),
            SyntaxError(what) => (501, "5.5.4", format!("Syntax error: {what}")),
            UnsupportedParameter(p) => (555, "5.5.4", format!("Unsupported parameter {p}")),
            BadSequence(what) => (503, "5.5.1", format!("Bad sequence of commands: {what}")),
            LineTooLong => (500, "5.5.2", "Line too long".into()),
            RelayDenied { rcpt } => (554, "5.7.1", format!("<{rcpt}>: Relay access denied")),
            BadAddress(what) => (553, "5.1.3", format!("{what} addresses are not accepted")),
            InvalidAddress => (553, "5.1.3", "Invalid address syntax".into()),
            TooManyRecipients => (452, "4.5.3", "Too many recipients".into()),
            MessageTooBig => (
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size".into(),
            ),
            HeaderTooBig { max } => (552, "5.3.4", format!("Message header exceeds {max} octets")),
            BareLineEnding => (
                550,
                "5.6.0",
                "Message refused: bare CR or LF in message data; lines must end with CRLF".into(),
            ),
            TextLineTooLong { max } => (
                550,
                "5.6.0",
                format!("Message refused: a text line is longer than {max} octets"),
            ),
            Loop => (554, "5.4.6", "Too many hops: mail loop detected".into()),
            InsufficientStorage => (452, "4.3.1", "Insufficient system storage".into()),
            LocalError => (
                451,
                "4.3.0",
                "Local error in processing; try again later".into(),
            ),
            Timeout { host } => (421, "4.4.2", format!("{host} Error: timeout exceeded")),
            TooManyConnections => (
                421,
                "4.7.0",
                "Too many connections from your address".into(),
            ),
            TooManyMessages => (
                421,
                "4.7.0",
                "Too many messages on this connection; reconnect to send more".into(),
            ),
            ShuttingDown { host } => (
                421,
                "4.3.2",
                format!("{host} Service shutting down, try again later"),
            ),
            NoValidRecipients => (554, "5.5.1", "No valid recipients".into()),
            Utf8Required => (553, "5.6.7", "Non-ASCII address requires SMTPUTF8".into()),
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let (code, esc, text) = self.parts();
        crate::metrics::get().smtp_reply(code);
        let mut s = String::with_capacity(text.len() + 12);
        if esc.is_empty() {
            let _ = write!(s, "{code} {text}\r\n");
        } else {
            let _ = write!(s, "{code} {esc} {text}\r\n");
        }
        out.extend_from_slice(s.as_bytes());
    }
}

/// The EHLO reply with its extension list.
pub fn ehlo(out: &mut Vec<u8>, host: &str, client: &str, max_size: u64, offer_tls: bool) {
    crate::metrics::get().smtp_reply(250);
    let mut lines = vec![format!("{host} greets {client}")];
    lines.push("PIPELINING".into());
    lines.push(format!("SIZE {max_size}"));
    if offer_tls {
        lines.push("STARTTLS".into());
    }
    lines.push("8BITMIME".into());
    lines.push("SMTPUTF8".into());
    lines.push("ENHANCEDSTATUSCODES".into());
    lines.push("CHUNKING".into());
    let n = lines.len();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == n { ' ' } else { '-' };
        out.extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format() {
        let mut v = Vec::new();
        Reply::RelayDenied { rcpt: "a@b".into() }.write(&mut v);
        assert_eq!(v, b"554 5.7.1 <a@b>: Relay access denied\r\n");
        let mut v = Vec::new();
        ehlo(&mut v, "h", "c", 10, true);
        let s = String::from_utf8(v).unwrap();
        assert!(s.starts_with("250-h greets c\r\n"));
        assert!(s.ends_with("250 CHUNKING\r\n"));
    }
}
