//! `#[ctx]` on every shape of function: methods with each receiver, trait
//! declarations and impls, generics, where-clauses, borrowed returns, and
//! crates with their own `Context`, `Error` and `Result`.

use std::fmt::Display;

use ctx::{ctx, Context, Error};

fn canceled() -> Context {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    ctx
}

struct Counter {
    name: String,
    count: u32,
}

impl Counter {
    /// Docs and other attributes stay.
    #[ctx]
    #[inline]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[ctx]
    fn bump(&mut self) -> Result<u32, Error> {
        self.count += 1;
        Ok(self.count)
    }

    #[ctx]
    async fn bump_async(&mut self, by: u32) -> Result<u32, Error> {
        tokio::task::yield_now().await;
        self.count += by;
        Ok(self.count)
    }

    #[ctx]
    fn into_count(self) -> Result<u32, Error> {
        Ok(self.count)
    }

    // The typed receiver is what this shows.
    #[allow(clippy::boxed_local)]
    #[ctx]
    fn boxed(self: Box<Self>) -> u32 {
        self.count
    }
}

#[tokio::test]
async fn methods_take_ctx_after_the_receiver() {
    let root = Context::background();
    let mut counter = Counter {
        name: "c".to_owned(),
        count: 0,
    };
    assert_eq!(counter.name(&root), "c");
    assert_eq!(counter.bump(&root), Ok(1));
    assert_eq!(counter.bump(&canceled()), Err(Error::Canceled));
    assert_eq!(counter.bump_async(&root, 2).await, Ok(3));
    assert_eq!(
        counter.bump_async(&canceled(), 2).await,
        Err(Error::Canceled)
    );
    assert_eq!(
        Box::new(Counter {
            name: String::new(),
            count: 5
        })
        .boxed(&root),
        5
    );
    assert_eq!(counter.into_count(&root), Ok(3));
}

trait Store {
    #[ctx]
    fn get(&self, key: u32) -> Result<String, Error>;

    #[ctx]
    async fn get_async(&self, key: u32) -> Result<String, Error>;

    /// A default body is expanded like any other.
    #[ctx]
    fn get_twice(&self, key: u32) -> Result<(String, String), Error> {
        Ok((self.get(ctx, key)?, self.get(ctx, key)?))
    }
}

struct Memory;

impl Store for Memory {
    #[ctx]
    fn get(&self, key: u32) -> Result<String, Error> {
        Ok(format!("v{key}"))
    }

    #[ctx]
    async fn get_async(&self, key: u32) -> Result<String, Error> {
        tokio::task::yield_now().await;
        self.get(ctx, key)
    }
}

#[tokio::test]
async fn trait_methods_declarations_impls_and_defaults() {
    let root = Context::background();
    assert_eq!(Memory.get(&root, 1), Ok("v1".to_owned()));
    assert_eq!(Memory.get(&canceled(), 1), Err(Error::Canceled));
    assert_eq!(Memory.get_async(&root, 2).await, Ok("v2".to_owned()));
    assert_eq!(Memory.get_async(&canceled(), 2).await, Err(Error::Canceled));
    assert_eq!(
        Memory.get_twice(&root, 3),
        Ok(("v3".to_owned(), "v3".to_owned()))
    );
    assert_eq!(Memory.get_twice(&canceled(), 3), Err(Error::Canceled));
}

#[ctx]
async fn generic<T, U: Clone>(
    value: T,
    other: &U,
    shown: impl Display,
) -> Result<(T, U, String), Error>
where
    T: Send + 'static,
{
    tokio::task::yield_now().await;
    Ok((value, other.clone(), shown.to_string()))
}

#[tokio::test]
async fn generics_where_clauses_and_impl_trait_arguments() {
    let out = generic(&Context::background(), 1u8, &"u", 2.5).await;
    assert_eq!(out, Ok((1, "u", "2.5".to_owned())));
}

/// Built on a crate's own names: the expansion must not use them.
mod own_names {
    #![allow(dead_code)]

    use ctx::ctx;

    pub struct Context;
    pub struct Error;
    pub struct Option;
    pub struct Some;
    pub struct Duration;

    #[derive(Debug, PartialEq)]
    pub struct AppError(pub ctx::Error);

    impl From<ctx::Error> for AppError {
        fn from(err: ctx::Error) -> Self {
            AppError(err)
        }
    }

    pub type Result<T> = std::result::Result<T, AppError>;

    #[ctx]
    pub async fn fetch(id: u64) -> Result<u64> {
        Ok(id)
    }

    #[ctx(timeout = std::time::Duration::from_secs(5))]
    pub fn fetch_sync(id: u64) -> Result<u64> {
        Ok(id)
    }
}

#[tokio::test]
async fn a_crates_own_context_error_and_result_do_not_interfere() {
    let root = Context::background();
    assert_eq!(own_names::fetch(&root, 3).await, Ok(3));
    assert_eq!(
        own_names::fetch(&canceled(), 3).await,
        Err(own_names::AppError(Error::Canceled))
    );
    assert_eq!(own_names::fetch_sync(&root, 4), Ok(4));
}

/// Futures of `#[ctx]` functions stay `Send`, so they can be spawned.
#[tokio::test]
async fn futures_are_send() {
    let root = Context::background();
    let task = tokio::spawn(async move {
        let mut counter = Counter {
            name: String::new(),
            count: 0,
        };
        counter.bump_async(&root, 4).await
    });
    assert_eq!(task.await.unwrap(), Ok(4));
}

#[ctx]
fn first(xs: &[u8]) -> &u8 {
    &xs[0]
}

#[ctx]
fn first_named<'a>(xs: &'a [u8], _len: usize) -> Option<&u8> {
    xs.first()
}

#[ctx]
async fn first_async(xs: &[u8]) -> Result<&u8, Error> {
    tokio::task::yield_now().await;
    xs.first().ok_or(Error::Canceled)
}

#[ctx]
fn split(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split(',')
}

#[tokio::test]
async fn a_borrowed_return_keeps_borrowing_from_its_only_borrowed_input() {
    let root = Context::background();
    let xs = vec![4, 5];
    assert_eq!(first(&root, &xs), &4);
    assert_eq!(first_named(&root, &xs, 2), Some(&4));
    assert_eq!(first_async(&root, &xs).await, Ok(&4));
    assert_eq!(first_async(&canceled(), &xs).await, Err(Error::Canceled));
    assert_eq!(split(&root, "a,b").collect::<Vec<_>>(), ["a", "b"]);
}
