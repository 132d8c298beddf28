//! The bulk body path against the line-at-a-time path: the same stream fed whole (bulk) and
//! one byte per call (every line through `line`) must give the same reply and the same bytes.

use super::*;
use std::io::Read;
use std::sync::Arc;

const LIMITS: Limits = Limits {
    max_line: 40,
    max_size: 4000,
    max_header: 2000,
    max_received: 5,
};

/// Feeds `input` in pieces of `step` bytes (0: all at once); the reply, the bytes queued and
/// how many input bytes DATA took.
async fn run(store: &QueueStore, input: &[u8], step: usize) -> (String, Vec<u8>, Option<usize>) {
    let mut asm = Assembler::new(
        store.clone(),
        Marker::new([7; 32], std::time::Duration::from_secs(86_400)),
        None,
        Envelope::for_tests(),
        b"Received: test\r\n".to_vec(),
        LIMITS,
    );
    let step = if step == 0 { input.len().max(1) } else { step };
    let mut used = None;
    for (i, piece) in input.chunks(step).enumerate() {
        if let Fed::End(n) = asm.feed_dot(piece) {
            used = Some(i * step + n);
            break;
        }
    }
    let reply = asm.finish().await;
    let bytes = match &reply {
        Reply::Queued { id } => {
            let (_, mut r) = store.open_message(id).unwrap();
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        }
        _ => Vec::new(),
    };
    // Which refusal wins when a line is both too long and has a bare CR depends on where the
    // input was split (an overlong partial line keeps only its last byte) in either path.
    let reply = match reply {
        Reply::Queued { .. } => "queued".to_string(),
        Reply::BareLineEnding | Reply::TextLineTooLong { .. } => "bad line".to_string(),
        other => format!("{other:?}"),
    };
    (reply, bytes, used)
}

#[tokio::test]
async fn bulk_and_line_at_a_time_agree() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(crate::seal::Keyring::for_tests());
    let store = QueueStore::open(dir.path(), keys).unwrap();
    let tokens: &[&[u8]] = &[
        b"\r\n",
        b"\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b".",
        b".",
        b"..",
        b"a",
        b"word ",
        b"x",
        b"\r\n.",
        b"\r\n.\r\n",
        b"0123456789abcdefghij",
    ];
    let mut next = crate::testutil::xorshift(0x2545_F491_4F6C_DD1Du64);
    let mut queued = 0;
    for _ in 0..600 {
        let mut input = b"Subject: t\r\n\r\n".to_vec();
        for _ in 0..next() % 120 {
            input.extend_from_slice(tokens[(next() % tokens.len() as u64) as usize]);
        }
        if !next().is_multiple_of(4) {
            input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
        }
        let bulk = run(&store, &input, 0).await;
        let split = run(&store, &input, 1 + (next() % 7) as usize).await;
        let bytewise = run(&store, &input, 1).await;
        assert_eq!(
            bulk,
            bytewise,
            "input {:?}",
            String::from_utf8_lossy(&input)
        );
        assert_eq!(
            split,
            bytewise,
            "input {:?}",
            String::from_utf8_lossy(&input)
        );
        queued += usize::from(bulk.0 == "queued" && bulk.2.is_some());
    }
    // The generator must reach the accepted case often enough to mean something.
    assert!(queued > 30, "only {queued} messages accepted");
}

#[tokio::test]
async fn dot_stuffing_and_end_in_bulk() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(crate::seal::Keyring::for_tests());
    let store = QueueStore::open(dir.path(), keys).unwrap();
    let input = b"Subject: t\r\n\r\nline\r\n..dot\r\n.x\r\n\r\n.\r\nRSET\r\n";
    let (reply, bytes, used) = run(&store, input, 0).await;
    assert_eq!(reply, "queued");
    assert_eq!(used, Some(input.len() - 6));
    assert!(
        bytes.ends_with(b"\r\n\r\nline\r\n.dot\r\nx\r\n\r\n"),
        "{bytes:?}"
    );
    for bare in [
        &b"Subject: t\r\n\r\nline\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"[..],
        b"Subject: t\r\n\r\nline\r\r\n.\r\n",
        b"Subject: t\r\n\r\nline\r\n.\r\r\n.\r\n",
    ] {
        assert_eq!(run(&store, bare, 0).await.0, "bad line");
    }
}
