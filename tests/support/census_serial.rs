//! Shared by the census tests: they run one at a time.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};

/// One test at a time: a census holds each context for the instant it
/// reads it, so another test's census could be what frees a context this
/// test has just let go of, a moment after this test looks for it.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs an async test on a current-thread runtime, under [`serial`].
pub fn block_on(test: impl Future<Output = ()>) {
    let _serial = serial();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}
