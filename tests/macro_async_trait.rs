//! `#[ctx]` on the methods of an `#[async_trait]` trait and its impls:
//! async-trait expands first and hands `#[ctx]` a `fn` returning
//! `Pin<Box<dyn Future ..>>`; the entry check, the race and the timeout
//! still hold, and `ctx` is usable in the body.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ctx::{ctx, Context, Error};

const FOREVER: Duration = Duration::from_secs(30);
const PROMPT: Duration = Duration::from_secs(1);

#[derive(Debug, PartialEq)]
enum AppError {
    Ctx(Error),
    NotFound(u32),
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Ctx(err)
    }
}

fn canceled() -> Context {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    ctx
}

#[async_trait]
trait Store: Send + Sync {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, AppError>;

    /// A default body, calling another method with its `ctx`.
    #[ctx]
    async fn get_sum(&self, a: u32, b: u32) -> Result<u32, AppError> {
        Ok(self.get(ctx, a).await? + self.get(ctx, b).await?)
    }

    /// A default body under its own budget.
    #[ctx(timeout = Duration::from_millis(50))]
    async fn slow_default(&self) -> Result<u32, AppError> {
        self.started();
        tokio::time::sleep(FOREVER).await;
        self.finished();
        Ok(0)
    }

    /// Not a `Result`: only the parameter.
    #[ctx]
    async fn label(&self) -> String;

    /// Takes the context by value.
    #[ctx(owned)]
    async fn detached(&self, id: u32) -> Result<u32, AppError>;

    /// Sees cancellation itself (the option goes on the impl).
    #[ctx]
    async fn count_until_canceled(&self) -> Result<u32, AppError>;

    fn started(&self);
    fn finished(&self);
}

#[derive(Default)]
struct Db {
    started: AtomicUsize,
    finished: AtomicUsize,
}

#[async_trait]
impl Store for Db {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, AppError> {
        self.started();
        // The body uses `ctx`: it lives as long as the boxed future.
        ctx.check()?;
        if id == 0 {
            return Err(AppError::NotFound(id));
        }
        if id == 99 {
            tokio::time::sleep(FOREVER).await;
        }
        self.finished();
        Ok(id * 10)
    }

    #[ctx]
    async fn label(&self) -> String {
        format!("db under {ctx:?}")
    }

    #[ctx(owned)]
    async fn detached(&self, id: u32) -> Result<u32, AppError> {
        // An owned context moves into a task.
        let task = tokio::spawn(async move { ctx.check().map(|()| id) });
        Ok(task.await.expect("the task does not panic")?)
    }

    #[ctx(cooperative)]
    async fn count_until_canceled(&self) -> Result<u32, AppError> {
        let mut steps = 0;
        while ctx.check().is_ok() {
            steps += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.finished();
        Ok(steps)
    }

    fn started(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    fn finished(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn an_impl_method_returns_its_value_and_uses_ctx() {
    let db = Db::default();
    assert_eq!(db.get(&Context::background(), 4).await, Ok(40));
    assert_eq!(
        db.get(&Context::background(), 0).await,
        Err(AppError::NotFound(0))
    );
}

#[tokio::test]
async fn a_call_on_a_canceled_context_returns_at_once_without_running_the_body() {
    let db = Db::default();
    assert_eq!(
        db.get(&canceled(), 4).await,
        Err(AppError::Ctx(Error::Canceled))
    );
    assert_eq!(db.started.load(Ordering::SeqCst), 0, "the body ran");
    assert_eq!(
        db.get_sum(&canceled(), 1, 2).await,
        Err(AppError::Ctx(Error::Canceled))
    );
    assert_eq!(db.started.load(Ordering::SeqCst), 0, "the default body ran");
}

#[tokio::test]
async fn a_call_under_a_50ms_budget_does_not_run_its_slow_body() {
    let db = Db::default();
    let (budget, _cancel) = Context::background().with_timeout(Duration::from_millis(50));
    let at = Instant::now();
    assert_eq!(
        db.get(&budget, 99).await,
        Err(AppError::Ctx(Error::DeadlineExceeded))
    );
    assert!(at.elapsed() < PROMPT, "took {:?}", at.elapsed());
    assert_eq!(db.started.load(Ordering::SeqCst), 1);
    assert_eq!(
        db.finished.load(Ordering::SeqCst),
        0,
        "the slow body finished"
    );
}

#[tokio::test]
async fn a_default_body_with_a_timeout_stops_at_its_budget() {
    let db = Db::default();
    let at = Instant::now();
    assert_eq!(
        db.slow_default(&Context::background()).await,
        Err(AppError::Ctx(Error::DeadlineExceeded))
    );
    assert!(at.elapsed() < PROMPT, "took {:?}", at.elapsed());
    assert_eq!(db.started.load(Ordering::SeqCst), 1);
    assert_eq!(db.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_default_body_calls_the_impl_with_its_ctx() {
    assert_eq!(
        Db::default().get_sum(&Context::background(), 1, 2).await,
        Ok(30)
    );
}

#[tokio::test]
async fn a_method_without_result_only_gets_the_parameter() {
    let (canceled, cancel) = Context::background().with_cancel();
    cancel.cancel();
    // Nothing to return early: the body runs and sees the context.
    assert_eq!(
        Db::default().label(&canceled).await,
        "db under background.with_cancel"
    );
}

#[tokio::test]
async fn an_owned_context_moves_into_a_task() {
    let db = Db::default();
    assert_eq!(db.detached(Context::background(), 3).await, Ok(3));
    assert_eq!(
        db.detached(canceled(), 3).await,
        Err(AppError::Ctx(Error::Canceled))
    );
}

#[tokio::test]
async fn a_cooperative_body_runs_to_its_end() {
    let db = Db::default();
    let (budget, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    assert!(db.count_until_canceled(&budget).await.is_ok());
    assert_eq!(db.finished.load(Ordering::SeqCst), 1);
    assert_eq!(
        db.count_until_canceled(&canceled()).await,
        Err(AppError::Ctx(Error::Canceled))
    );
}

#[tokio::test]
async fn calls_through_a_trait_object_keep_the_checks() {
    let store: Arc<dyn Store> = Arc::new(Db::default());
    assert_eq!(store.get(&Context::background(), 2).await, Ok(20));
    assert_eq!(
        store.get(&canceled(), 2).await,
        Err(AppError::Ctx(Error::Canceled))
    );
    // The boxed future is `Send`: it runs on another task.
    let task = tokio::spawn(async move { store.get(&Context::background(), 5).await });
    assert_eq!(task.await.unwrap(), Ok(50));
}

/// Other shapes async-trait rewrites: generic methods, `&mut self`, borrowed
/// parameters and returns, associated functions, `?Send`.
#[async_trait]
trait Shapes {
    #[ctx]
    async fn generic<T: std::fmt::Display + Send>(&self, value: T) -> Result<String, Error>;

    #[ctx]
    async fn bump(&mut self, by: u32) -> Result<u32, Error>;

    #[ctx]
    async fn first<'a>(&self, words: &'a [&'a str]) -> Result<&'a str, Error>;

    #[ctx]
    async fn make(seed: u32) -> Result<Self, Error>
    where
        Self: Sized;

    #[ctx]
    async fn limited(&self, limit_ms: u64) -> Result<(), Error>;
}

struct Counter(u32);

#[async_trait]
impl Shapes for Counter {
    #[ctx]
    async fn generic<T: std::fmt::Display + Send>(&self, value: T) -> Result<String, Error> {
        ctx.check()?;
        Ok(format!("{value}{}", self.0))
    }

    #[ctx]
    async fn bump(&mut self, by: u32) -> Result<u32, Error> {
        self.0 += by;
        Ok(self.0)
    }

    #[ctx]
    async fn first<'a>(&self, words: &'a [&'a str]) -> Result<&'a str, Error> {
        ctx.check()?;
        Ok(words[0])
    }

    #[ctx]
    async fn make(seed: u32) -> Result<Self, Error> {
        ctx.check()?;
        Ok(Counter(seed))
    }

    #[ctx(timeout = Duration::from_millis(limit_ms))]
    async fn limited(&self, limit_ms: u64) -> Result<(), Error> {
        tokio::time::sleep(FOREVER).await;
        Ok(())
    }
}

#[tokio::test]
async fn every_shape_async_trait_rewrites_keeps_the_checks() {
    let root = Context::background();
    let mut counter = Counter::make(&root, 1).await.unwrap();
    assert_eq!(counter.generic(&root, "n").await, Ok("n1".to_owned()));
    assert_eq!(counter.bump(&root, 2).await, Ok(3));
    assert_eq!(counter.bump(&canceled(), 2).await, Err(Error::Canceled));
    assert_eq!(counter.0, 3, "the canceled call ran its body");
    let words = ["a", "b"];
    assert_eq!(counter.first(&root, &words).await, Ok("a"));
    assert!(Counter::make(&canceled(), 1).await.is_err());
    let at = Instant::now();
    assert_eq!(
        counter.limited(&root, 20).await,
        Err(Error::DeadlineExceeded)
    );
    assert!(at.elapsed() < PROMPT);
}

#[async_trait(?Send)]
trait Local {
    #[ctx]
    async fn get(&self) -> Result<u32, Error>;
}

#[async_trait(?Send)]
impl Local for std::rc::Rc<u32> {
    #[ctx]
    async fn get(&self) -> Result<u32, Error> {
        ctx.check()?;
        Ok(**self)
    }
}

#[tokio::test]
async fn a_non_send_trait_keeps_the_checks() {
    let local = std::rc::Rc::new(8);
    assert_eq!(local.get(&Context::background()).await, Ok(8));
    assert_eq!(local.get(&canceled()).await, Err(Error::Canceled));
}
