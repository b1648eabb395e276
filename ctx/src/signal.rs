//! Contexts canceled by SIGINT or SIGTERM (Ctrl-C): Go's
//! `signal.NotifyContext`.
//!
//! `#[ctx::main]` gives its body such a context; [`notify`] makes one by
//! hand. Either way the first signal cancels every context from `notify`
//! that is still live, with a [`Received`] cause, so a server can stop taking
//! work, finish what it holds and return.
//!
//! # A second signal
//!
//! tokio, which listens for the signals, cannot give them back to the
//! operating system's default action, as Go's `stop` does. So `ctx` does it
//! by hand: a signal that arrives while no context from `notify` is live
//! (all were canceled by an earlier signal, or their guards were dropped)
//! ends the process at once by that signal's default action. On Unix the
//! process is killed by the signal itself (the handler is put back to the
//! default and the signal raised again, with `signal-hook`), so a shell shows
//! 130 for SIGINT and 143 for SIGTERM, and a shell script or a supervisor
//! running the program sees a death by signal, as with Go. Text printed
//! without a final newline and not flushed is lost then, as for any program
//! the signal kills. As process 1 (a container's entry point, which the
//! kernel does not let a default action kill) the process exits with status
//! 130 or 143 instead, flushing standard output. Pressing Ctrl-C a
//! second time during a slow shutdown therefore quits, as users expect. A program that handles
//! these signals itself as well should keep one `notify` context alive for as
//! long as it does.
//!
//! # Runtime
//!
//! None is needed: the signals are watched by one background thread, named
//! `ctx-signal`, started by the first call to [`notify`] and kept for the
//! life of the process (Go has the same loop in its runtime). `notify` works
//! inside any tokio runtime, whatever its configuration, and outside one.

use std::fmt;
use std::io;
use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::{CancelGuard, CancelHandle, Context};

/// Returns a child of `parent` that is canceled when the process receives
/// SIGINT or SIGTERM (on Windows: Ctrl-C), with the signal as its
/// [`cause`](Context::cause).
///
/// The child is also done when `parent` is, or when the guard is dropped or
/// canceled; dropping the guard is how to stop listening (Go's `stop`).
/// After that, see the [module docs](self) for what a later signal does.
///
/// # Errors
///
/// When the signals cannot be watched at all: the background thread or its
/// runtime could not be started, or the operating system refused the signal
/// handler. Only the first call can fail this way; a later call tries again.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let (ctx, _stop) = ctx::signal::notify(&ctx::Context::background())?;
/// let why = ctx.done().await; // Ctrl-C
/// assert_eq!(why, ctx::Error::Canceled);
/// let cause = ctx.cause().unwrap();
/// assert!(cause.downcast_ref::<ctx::signal::Received>().is_some());
/// # Ok(()) }
/// ```
///
/// Go: `signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)`.
#[cfg_attr(feature = "debug", track_caller)]
pub fn notify(parent: &Context) -> io::Result<(Context, CancelGuard)> {
    let hub = hub()?;
    let (ctx, guard) = parent.with_cancel();
    if !ctx.is_done() {
        // The watcher keeps a clone of the context only to see, later, that
        // it is done and forget it.
        let sent = hub.registrations.send((ctx.clone(), guard.handle()));
        if sent.is_err() {
            panic!("ctx: internal error: the signal thread is gone");
        }
    }
    Ok((ctx, guard))
}

/// The cause of a context canceled by [`notify`]: which signal arrived.
///
/// ```
/// let (ctx, cancel) = ctx::Context::background().with_cancel();
/// cancel.cancel_with_cause(ctx::signal::Received::Interrupt);
/// let cause = ctx.cause().unwrap();
/// assert_eq!(cause.downcast_ref(), Some(&ctx::signal::Received::Interrupt));
/// assert_eq!(cause.to_string(), "received SIGINT");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Received {
    /// SIGINT: Ctrl-C in a terminal (on Windows, the Ctrl-C event).
    Interrupt,
    /// SIGTERM: the polite stop of `kill`, systemd, container runtimes.
    Terminate,
}

impl Received {
    /// Ends the process as the signal's default action would, had nothing
    /// handled it.
    ///
    /// On Unix the process dies by the signal itself, not by an exit status
    /// that imitates it: a shell running a script stops the script when a
    /// command was killed by SIGINT, and a supervisor reports the signal.
    /// signal-hook puts the default action back, unblocks the signal and
    /// raises it (Go: the signal's default behaviour, restored by `stop`).
    ///
    /// Process 1 (a container's entry point without an init) cannot die by
    /// a signal whose action is the default: the kernel ignores it, and
    /// signal-hook's fallback, `abort`, would crash the process instead. So
    /// there, as on other systems, the process exits with the status a
    /// shell shows for the signal, 128 plus its number.
    fn default_action(self) -> ! {
        #[cfg(unix)]
        if std::process::id() != 1 {
            use signal_hook::consts::{SIGINT, SIGTERM};
            let signal = match self {
                Received::Interrupt => SIGINT,
                Received::Terminate => SIGTERM,
            };
            // Returns only if the signal is not known to signal-hook's table.
            let _ = signal_hook::low_level::emulate_default_handler(signal);
        }
        std::process::exit(match self {
            Received::Interrupt => 128 + 2,
            Received::Terminate => 128 + 15,
        })
    }
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Received::Interrupt => "received SIGINT",
            Received::Terminate => "received SIGTERM",
        })
    }
}

impl std::error::Error for Received {}

/// A context from `notify` and the handle that cancels it.
type Registration = (Context, CancelHandle);

/// The one watcher of the process.
struct Hub {
    registrations: UnboundedSender<Registration>,
}

fn hub() -> io::Result<&'static Hub> {
    static HUB: OnceLock<Hub> = OnceLock::new();
    // Only one thread may start the watcher; a failed start is not cached,
    // so a later call tries again.
    static STARTING: Mutex<()> = Mutex::new(());

    if let Some(hub) = HUB.get() {
        return Ok(hub);
    }
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(hub) = HUB.get() {
        return Ok(hub);
    }
    let hub = start()?;
    Ok(HUB.get_or_init(|| hub))
}

/// Starts the `ctx-signal` thread and waits until it listens.
fn start() -> io::Result<Hub> {
    let (registrations, incoming) = unbounded_channel();
    let (ready, listening) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
    std::thread::Builder::new()
        .name("ctx-signal".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            runtime.block_on(async move {
                match Signals::new() {
                    Ok(signals) => {
                        let _ = ready.send(Ok(()));
                        watch(signals, incoming).await;
                    }
                    Err(err) => {
                        let _ = ready.send(Err(err));
                    }
                }
            });
        })?;
    match listening.recv() {
        Ok(Ok(())) => Ok(Hub { registrations }),
        Ok(Err(err)) => Err(err),
        Err(_) => panic!("ctx: internal error: the signal thread stopped before it listened"),
    }
}

/// The watcher's loop: remembers live contexts, cancels them on a signal,
/// and ends the process on a signal that finds none.
async fn watch(mut signals: Signals, mut incoming: UnboundedReceiver<Registration>) {
    let mut live: Vec<Registration> = Vec::new();
    loop {
        tokio::select! {
            registration = incoming.recv() => match registration {
                Some(registration) => {
                    prune(&mut live);
                    live.push(registration);
                }
                // The hub is a static: never dropped while the process runs.
                None => return,
            },
            received = signals.recv() => {
                // `notify` sends before it returns, so a context made before
                // the signal arrived is queued by now.
                while let Ok(registration) = incoming.try_recv() {
                    live.push(registration);
                }
                prune(&mut live);
                if live.is_empty() {
                    received.default_action();
                }
                for (_, handle) in live.drain(..) {
                    handle.cancel_with_cause(received);
                }
            }
        }
    }
}

/// Forgets the contexts that are done.
///
/// A forgotten context may be the last handle to user values, whose `Drop`
/// runs here: a panic in it must not end the one watcher of the process.
/// The list gives its memory back once it is less than a quarter full, so a
/// burst of registrations does not stay allocated for the life of the
/// process.
fn prune(live: &mut Vec<Registration>) {
    let mut i = 0;
    while i < live.len() {
        if live[i].0.is_done() {
            let gone = live.swap_remove(i);
            crate::unwind::contain(move || drop(gone));
        } else {
            i += 1;
        }
    }
    if live.capacity() > 16 && live.len() * 4 < live.capacity() {
        live.shrink_to(live.len() * 2);
    }
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    /// Must run inside the watcher's runtime.
    fn new() -> io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) -> Received {
        // `recv` yields `None` only once the runtime shuts down, which ends
        // this loop anyway; pending forever is the honest answer then.
        tokio::select! {
            Some(()) = self.interrupt.recv() => Received::Interrupt,
            Some(()) = self.terminate.recv() => Received::Terminate,
            else => std::future::pending().await,
        }
    }
}

#[cfg(windows)]
struct Signals {
    ctrl_c: tokio::signal::windows::CtrlC,
}

#[cfg(windows)]
impl Signals {
    /// Must run inside the watcher's runtime.
    fn new() -> io::Result<Signals> {
        Ok(Signals {
            ctrl_c: tokio::signal::windows::ctrl_c()?,
        })
    }

    async fn recv(&mut self) -> Received {
        match self.ctrl_c.recv().await {
            Some(()) => Received::Interrupt,
            None => std::future::pending().await,
        }
    }
}
