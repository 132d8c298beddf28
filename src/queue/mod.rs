//! The durable, encrypted message queue shared by SMTP in and the relay out.

mod commit;
mod envelope;
mod segments;
mod store;

pub use envelope::{
    DeliveryState, Envelope, ProtectedCopy, RcptStatus, Recipient, new_id, now, valid_id,
};
pub use store::{Incoming, MessageReader, QueueStore, StoreError};
