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
    //! `get` is one acquire load of the value's address, as in std, so a
    //! thread that has no happens-before edge to the initialisation may
    //! still find the cell empty: the case the table's orderings exist
    //! for. `get_or_init` serialises initialisers on a lock and waits for
    //! one under way, as std's does. Values are leaked, never freed: a
    //! model allocates a few dozen.

    use loom::sync::{
        atomic::{AtomicPtr, Ordering},
        Mutex,
    };

    pub(crate) struct OnceLock<T: 'static> {
        value: AtomicPtr<T>,
        init: Mutex<()>,
    }

    impl<T: 'static> OnceLock<T> {
        pub(crate) fn new() -> Self {
            Self {
                value: AtomicPtr::new(std::ptr::null_mut()),
                init: Mutex::new(()),
            }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            let value = self.value.load(Ordering::Acquire);
            #[allow(unsafe_code)]
            // SAFETY: a non-null address is that of a leaked `Box`, stored
            // once and never freed, whose initialisation the acquire load
            // has made visible.
            unsafe {
                value.as_ref()
            }
        }

        pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
            if let Some(value) = self.get() {
                return value;
            }
            let _initialising = self.init.lock().unwrap();
            // An earlier initialiser stored before it unlocked.
            if let Some(value) = self.get() {
                return value;
            }
            self.publish(init())
        }

        pub(crate) fn set(&self, new: T) -> Result<(), T> {
            let _initialising = self.init.lock().unwrap();
            if self.get().is_some() {
                return Err(new);
            }
            self.publish(new);
            Ok(())
        }

        fn publish(&self, value: T) -> &T {
            let value: &'static T = Box::leak(Box::new(value));
            self.value
                .store(std::ptr::from_ref(value).cast_mut(), Ordering::Release);
            value
        }
    }

    impl<T: 'static> Default for OnceLock<T> {
        fn default() -> Self {
            Self::new()
        }
    }
}
