//! The synchronisation primitives of the parts that are model-checked:
//! std's, or under `cfg(loom)` loom's, so that the `loom` tests explore
//! every interleaving and every value the memory model allows each load to
//! see (what an ARM server can show and x86 hides).
//!
//! Run the models with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`.

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Mutex, OnceLock,
};

#[cfg(loom)]
pub(crate) use self::model::OnceLock;
#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Mutex,
};

#[cfg(loom)]
mod model {
    //! std's `OnceLock` as loom sees it.
    //!
    //! `get` is one acquire load of a flag, as in std, so a thread that has
    //! no happens-before edge to the initialisation may still find the cell
    //! empty: the case the table's orderings exist for. `get_or_init`
    //! serialises initialisers on a lock and waits for one under way, as
    //! std's does. Values are leaked so that references to them need no
    //! `unsafe`: a model allocates a few dozen.

    use loom::sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    };

    pub(crate) struct OnceLock<T: 'static> {
        ready: AtomicBool,
        value: Mutex<Option<&'static T>>,
    }

    impl<T: 'static> OnceLock<T> {
        pub(crate) fn new() -> Self {
            Self {
                ready: AtomicBool::new(false),
                value: Mutex::new(None),
            }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            if !self.ready.load(Ordering::Acquire) {
                return None;
            }
            *self.value.lock().unwrap()
        }

        pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
            if let Some(value) = self.get() {
                return value;
            }
            let mut value = self.value.lock().unwrap();
            if let Some(value) = *value {
                return value;
            }
            let made: &'static T = Box::leak(Box::new(init()));
            *value = Some(made);
            self.ready.store(true, Ordering::Release);
            made
        }

        pub(crate) fn set(&self, new: T) -> Result<(), T> {
            let mut value = self.value.lock().unwrap();
            if value.is_some() {
                return Err(new);
            }
            *value = Some(Box::leak(Box::new(new)));
            self.ready.store(true, Ordering::Release);
            Ok(())
        }
    }

    impl<T: 'static> Default for OnceLock<T> {
        fn default() -> Self {
            Self::new()
        }
    }
}
