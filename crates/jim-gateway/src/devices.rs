//! Device labels, shared by the sessions that give the same one.
//!
//! A deployment's clients name a handful of devices ("ios", "android",
//! "web"): kept once per session, a label is an allocation of its own in
//! every connection, idle or not (32 B with malloc's header, of ~1.3 KB).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// Labels kept: the first this many seen, so that clients making labels
/// up cannot grow the set.
const MOST: usize = 64;

/// Longer labels are not kept.
const LONGEST: usize = 32;

/// The device labels sessions share.
#[derive(Debug, Default)]
pub(crate) struct Devices {
    known: RwLock<HashSet<Arc<str>>>,
}

impl Devices {
    /// `device` as a label: the one already known, or a new one (kept for
    /// the next sessions while there is room).
    pub(crate) fn label(&self, device: &str) -> Arc<str> {
        let known = self
            .known
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(label) = known.get(device) {
            return Arc::clone(label);
        }
        let full = known.len() >= MOST;
        drop(known);
        let label: Arc<str> = Arc::from(device);
        if !full && device.len() <= LONGEST {
            let mut known = self
                .known
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Another session may have put it there meanwhile: theirs stays.
            if let Some(theirs) = known.get(device) {
                return Arc::clone(theirs);
            }
            if known.len() < MOST {
                known.insert(Arc::clone(&label));
            }
        }
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_with_the_same_label_share_it() {
        let devices = Devices::default();
        let first = devices.label("ios");
        let second = devices.label("ios");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(&*devices.label("web"), "web");
    }

    #[test]
    fn made_up_labels_do_not_grow_the_set() {
        let devices = Devices::default();
        for n in 0..1_000 {
            assert_eq!(&*devices.label(&format!("device-{n}")), format!("device-{n}"));
        }
        assert_eq!(devices.known.read().unwrap().len(), MOST);
        let long = "x".repeat(LONGEST + 1);
        let devices = Devices::default();
        assert!(
            !Arc::ptr_eq(&devices.label(&long), &devices.label(&long)),
            "a long label is not kept"
        );
    }
}
