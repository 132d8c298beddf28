//! sluis: a secure-mail gateway. Mail flows one way:
//! SMTP in → (inspect → policy → protect: seal, store, rewrite) → relay queue → next hop.

pub mod config;
pub mod control;
pub mod dkim;
pub mod explain;
pub mod fsutil;
pub mod headers;
pub mod inspect;
pub mod marker;
pub mod notice;
pub mod pipeline;
pub mod policy;
pub mod protect;
pub mod queue;
pub mod relay;
pub mod rewrite;
pub mod seal;
pub mod serve;
pub mod sms;
pub mod smtp;
pub mod store;
pub mod units;
pub mod web;
