//! The durable, encrypted message queue shared by SMTP in and the relay out.

mod commit;
mod envelope;
mod fresh;
mod pool;
mod segments;
mod store;

pub use envelope::{
    Decided, DeliveryState, Envelope, ProtectedCopy, RcptStatus, Recipient, new_id, now, valid_id,
};
pub use store::{Incoming, MessageReader, QueueStore, StoreError};

/// Makes room for `more` bytes in a buffer that keeps growing while a message arrives: four
/// times the capacity at a time (never past `max`), so that a message of a few MiB is copied by
/// reallocation about a third of its size, not once over as with doubling.
fn grow(v: &mut Vec<u8>, more: usize, max: usize) {
    let need = v.len() + more;
    if need > v.capacity() {
        let want = (v.capacity() * 4).clamp(need, max.max(need));
        v.reserve_exact(want - v.len());
    }
}
