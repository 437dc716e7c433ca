//! Wall-clock time and epochs.

use std::sync::Arc;

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh epoch: 10 random letters and digits.
pub(crate) fn new_epoch() -> Arc<str> {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(10)
        .collect::<String>()
        .into()
}

/// The epoch of an inbox that has wrapped `generation` times past the last
/// offset.
pub(crate) fn epoch_of(store: &Arc<str>, generation: u32) -> Arc<str> {
    if generation == 0 {
        Arc::clone(store)
    } else {
        format!("{store}.{generation}").into()
    }
}
