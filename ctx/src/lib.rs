//! Placeholder: the crate documentation (the tour of the model) is written with the core.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod after_func;
mod cancel;
mod context;
mod deadline;
mod done;
mod error;
mod loom;
mod scope;
pub mod signal;
mod slab;
mod timer;
mod tree;
mod value;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use after_func::AfterFunc;
pub use cancel::{CancelGuard, CancelHandle};
pub use context::Context;
pub use done::Done;
pub use error::{Cause, Error};
// `scope` and `Scope` (explicit list once the scope module lands).
pub use scope::*;

// `ctx`, `main`, `test` (explicit list once the macros land).
pub use ctx_macros::*;
