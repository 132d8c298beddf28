//! Prometheus metrics: one registry with typed families, served as OpenMetrics text at
//! `/metrics` on the web listener. Every counter a hot path touches is resolved once here, so
//! counting costs one atomic increment. No label ever carries an address.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;
use std::time::Duration;

type Labels = Vec<(&'static str, &'static str)>;

/// The (verdict, protection) pairs a decision can have; `message` indexes this list.
const DECISIONS: [(&str, &str); 6] = [
    ("deliver", "none"),
    ("notify", "none"),
    ("upload", "none"),
    ("protect", "public_files"),
    ("protect", "secure_files"),
    ("protect", "secure_message"),
];
const PORTAL: [&str; 4] = ["view", "download", "signin_failure", "lockout"];

/// Where a portal event is counted.
#[derive(Clone, Copy)]
pub enum PortalEvent {
    View = 0,
    Download = 1,
    SigninFailure = 2,
    /// An attempt refused because the link or the client is locked out.
    Lockout = 3,
}

/// A relay attempt's result for one recipient.
#[derive(Clone, Copy)]
pub enum Attempt {
    Delivered = 0,
    Deferred = 1,
    Failed = 2,
}

pub struct Metrics {
    registry: Registry,
    /// One per entry of `DECISIONS`.
    messages: [Counter; 6],
    smtp_sessions: Counter,
    /// By class: 2xx, 3xx, 4xx, 5xx.
    smtp_replies: [Counter; 4],
    relay: [Counter; 3],
    portal: [Counter; 4],
    /// [sent, failed]
    sms: [Counter; 2],
    queue: Gauge,
    inspect: Histogram,
    seal: Histogram,
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics (one set, like the process's log).
pub fn get() -> &'static Metrics {
    &GLOBAL
}

fn family(
    reg: &mut Registry,
    name: &str,
    help: &str,
    key: &'static str,
    values: &[&'static str],
) -> Vec<Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    values
        .iter()
        .map(|v| f.get_or_create(&vec![(key, *v)]).clone())
        .collect()
}

fn arr<const N: usize>(v: Vec<Counter>) -> [Counter; N] {
    v.try_into()
        .unwrap_or_else(|_| unreachable!("one counter per label value"))
}

impl Metrics {
    fn new() -> Metrics {
        let mut reg = Registry::with_prefix("sluis");
        reg.register(
            "build",
            "The running sluis version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let msgs = Family::<Labels, Counter>::default();
        reg.register(
            "messages",
            "Messages decided by the policy, by verdict and protection",
            msgs.clone(),
        );
        let messages = DECISIONS.map(|(v, p)| {
            msgs.get_or_create(&vec![("verdict", v), ("protection", p)])
                .clone()
        });
        let smtp_sessions = Counter::default();
        reg.register(
            "smtp_sessions",
            "SMTP connections accepted",
            smtp_sessions.clone(),
        );
        let classes = ["2xx", "3xx", "4xx", "5xx"];
        let smtp_replies = arr(family(
            &mut reg,
            "smtp_replies",
            "SMTP replies sent, by class",
            "class",
            &classes,
        ));
        let relay = arr(family(
            &mut reg,
            "relay_attempts",
            "Delivery attempts to the next hop per recipient, by result",
            "result",
            &["delivered", "deferred", "failed"],
        ));
        let portal = arr(family(
            &mut reg,
            "portal_events",
            "Portal events, by kind",
            "event",
            &PORTAL,
        ));
        let sms = arr(family(
            &mut reg,
            "sms",
            "Text messages handed to the provider, by result",
            "result",
            &["sent", "failed"],
        ));
        let queue = Gauge::default();
        reg.register(
            "queue_messages",
            "Messages in the relay queue (read at scrape time)",
            queue.clone(),
        );
        let buckets = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let inspect = buckets();
        reg.register_with_unit(
            "inspection_duration",
            "Time to inspect and decide one message",
            Unit::Seconds,
            inspect.clone(),
        );
        let seal = buckets();
        reg.register_with_unit(
            "sealing_duration",
            "Time to seal and store one protected message",
            Unit::Seconds,
            seal.clone(),
        );
        Metrics {
            registry: reg,
            messages,
            smtp_sessions,
            smtp_replies,
            relay,
            portal,
            sms,
            queue,
            inspect,
            seal,
        }
    }

    pub fn message(&self, v: &crate::policy::decide::Verdict) {
        use crate::policy::decide::Verdict as V;
        use crate::policy::schema::Protection as P;
        let i = match v {
            V::Deliver => 0,
            V::Notify => 1,
            V::Upload => 2,
            V::Protect { protection, .. } => match protection {
                P::PublicFiles => 3,
                P::SecureFiles => 4,
                P::SecureMessage => 5,
            },
        };
        self.messages[i].inc();
    }

    pub fn smtp_session(&self) {
        self.smtp_sessions.inc();
    }

    pub fn smtp_reply(&self, code: u16) {
        if let Some(c) = self.smtp_replies.get((code / 100).wrapping_sub(2) as usize) {
            c.inc();
        }
    }

    pub fn relay_attempt(&self, a: Attempt) {
        self.relay[a as usize].inc();
    }

    pub fn portal(&self, e: PortalEvent) {
        self.portal[e as usize].inc();
    }

    pub fn sms(&self, sent: bool) {
        self.sms[usize::from(!sent)].inc();
    }

    pub fn inspected(&self, took: Duration) {
        self.inspect.observe(took.as_secs_f64());
    }

    pub fn sealed(&self, took: Duration) {
        self.seal.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text, with the queue depth as counted now.
    pub fn render(&self, queue_depth: Option<usize>) -> String {
        if let Some(n) = queue_depth {
            self.queue.set(n as i64);
        }
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_the_prefix_units_and_total_suffix() {
        let m = Metrics::new();
        m.smtp_reply(250);
        m.smtp_reply(554);
        m.smtp_reply(999);
        m.sealed(Duration::from_millis(3));
        let t = m.render(Some(7));
        assert!(
            t.contains("sluis_smtp_replies_total{class=\"2xx\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("sluis_smtp_replies_total{class=\"5xx\"} 1"),
            "{t}"
        );
        assert!(t.contains("sluis_queue_messages 7"), "{t}");
        assert!(t.contains("sluis_sealing_duration_seconds_count 1"), "{t}");
        assert!(t.contains("sluis_build_info{version=\""), "{t}");
    }
}
