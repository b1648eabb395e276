//! The cause a failed scope records on its group context.

use std::any::{type_name, Any};
use std::fmt;

use crate::unwind::contain;
use crate::{Cause, Error};

/// The cause recorded for the group context when a task or the body fails.
///
/// `E`'s `Display` is user code: a panic in it is contained here (its
/// payload dropped inside a further catch), and the cause then says so
/// instead of quoting the error, so the error itself is still returned.
pub(super) fn cause_of<E: fmt::Display + 'static>(err: &E) -> Cause {
    let any: &dyn Any = err;
    if let Some(cause) = any.downcast_ref::<Cause>() {
        return cause.clone();
    }
    if let Some(err) = any.downcast_ref::<Error>() {
        return (*err).into();
    }
    TaskFailed {
        message: contain(|| format!("{err:#}")),
        error_type: type_name::<E>(),
    }
    .into()
}

/// The group's cause after a task or the body returned an error of a type
/// that cannot be shared: displays exactly as that error did.
struct TaskFailed {
    /// `None` if the error's `Display` panicked.
    message: Option<String>,
    error_type: &'static str,
}

impl fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => f.write_str(message),
            None => write!(
                f,
                "the scope failed with an error of type {} whose Display panicked",
                self.error_type
            ),
        }
    }
}

impl fmt::Debug for TaskFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFailed")
            .field("error_type", &self.error_type)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for TaskFailed {}

#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    Task,
    Body,
}

/// The group's cause after a panic.
#[derive(Debug)]
pub(super) struct Panicked {
    pub(super) origin: Origin,
    pub(super) message: Option<String>,
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.origin {
            Origin::Task => "a task in the scope panicked",
            Origin::Body => "the body of the scope panicked",
        })?;
        match &self.message {
            Some(message) => write!(f, ": {message}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Panicked {}

pub(super) fn panic_message(panic: &(dyn Any + Send)) -> Option<String> {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        Some((*s).to_owned())
    } else {
        panic.downcast_ref::<String>().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_cause_keeps_shareable_errors_and_snapshots_others() {
        let cause = cause_of(&Error::DeadlineExceeded);
        assert!(cause.is(Error::DeadlineExceeded));

        let shared: Cause = std::fmt::Error.into();
        let cause = cause_of(&shared);
        assert!(cause.downcast_ref::<std::fmt::Error>().is_some());

        let cause = cause_of(&std::io::Error::other("disk full"));
        assert_eq!(cause.to_string(), "disk full");
        assert!(format!("{cause:?}").contains("std::io::error::Error"));
    }

    #[test]
    fn an_error_whose_display_panics_with_a_panicking_payload_still_gives_a_cause() {
        struct Grumpy;
        impl fmt::Display for Grumpy {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                std::panic::panic_any(crate::unwind::tests::Bomb)
            }
        }
        let cause = cause_of(&Grumpy);
        assert!(
            cause.to_string().ends_with("Grumpy whose Display panicked"),
            "{cause}"
        );
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(&"boom").as_deref(), Some("boom"));
        assert_eq!(
            panic_message(&String::from("bang")).as_deref(),
            Some("bang")
        );
        assert_eq!(panic_message(&7u32), None);
        let cause = Panicked {
            origin: Origin::Task,
            message: Some("boom".into()),
        };
        assert_eq!(cause.to_string(), "a task in the scope panicked: boom");
    }
}
