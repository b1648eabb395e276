//! `#[ctx]` under `#[async_trait]` (declarations, default bodies, impls,
//! every option, `?Send`) and on hand-written functions returning a
//! future, without a warning: an unused `ctx`, a parameter only the
//! `timeout` reads, a body that never returns.
#![deny(warnings)]

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use ctx::{ctx, Context, Error};

#[async_trait]
pub trait Store: Send + Sync {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, Error>;

    #[ctx]
    async fn get_twice(&self, id: u32) -> Result<u32, Error> {
        Ok(self.get(ctx, id).await? + self.get(ctx, id).await?)
    }

    #[ctx]
    async fn limited(&self, limit_ms: u64) -> Result<(), Error>;

    #[ctx]
    async fn patient(&self) -> Result<(), Error>;

    #[ctx]
    async fn name(&self) -> &str;

    #[ctx(owned)]
    async fn owned(&self) -> Result<(), Error>;

    #[ctx]
    async fn generic<T: Send + 'static>(&self, value: T) -> Result<T, Error>;
}

pub struct Db(String);

#[async_trait]
impl Store for Db {
    // `ctx` unused: no warning.
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, Error> {
        Ok(id)
    }

    // `limit_ms` is read by the timeout only.
    #[ctx(timeout = Duration::from_millis(limit_ms))]
    async fn limited(&self, limit_ms: u64) -> Result<(), Error> {
        ctx.check()
    }

    #[ctx(cooperative, timeout = Duration::from_secs(1))]
    async fn patient(&self) -> Result<(), Error> {
        loop {
            ctx.check()?;
            tokio::task::yield_now().await;
        }
    }

    #[ctx]
    async fn name(&self) -> &str {
        &self.0
    }

    #[ctx(owned)]
    async fn owned(&self) -> Result<(), Error> {
        tokio::spawn(async move { ctx.check() }).await.unwrap()
    }

    #[ctx]
    async fn generic<T: Send + 'static>(&self, value: T) -> Result<T, Error> {
        Ok(value)
    }
}

#[async_trait(?Send)]
trait Local {
    #[ctx]
    async fn get(&self) -> Result<u32, Error>;
}

#[async_trait(?Send)]
impl Local for std::rc::Rc<u32> {
    #[ctx(timeout = Duration::from_secs(1))]
    async fn get(&self) -> Result<u32, Error> {
        Ok(**self)
    }
}

#[ctx]
fn hand_written(id: u32) -> impl Future<Output = Result<u32, Error>> {
    async move { Ok(id) }
}

#[ctx(timeout = Duration::from_secs(1))]
fn hand_written_boxed(
    id: u32,
) -> std::pin::Pin<Box<dyn Future<Output = Result<u32, Error>> + Send + 'static>> {
    Box::pin(async move {
        ctx.check()?;
        Ok(id)
    })
}

fn main() {
    let root = Context::background();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = Db("db".to_owned());
        assert_eq!(db.get_twice(&root, 2).await, Ok(4));
        assert_eq!(db.limited(&root, 1000).await, Ok(()));
        assert_eq!(db.name(&root).await, "db");
        assert_eq!(db.owned(root.clone()).await, Ok(()));
        assert_eq!(db.generic(&root, 'x').await, Ok('x'));
        assert_eq!(db.patient(&root).await, Err(Error::DeadlineExceeded));
        assert_eq!(std::rc::Rc::new(3).get(&root).await, Ok(3));
        assert_eq!(hand_written(&root, 5).await, Ok(5));
        assert_eq!(hand_written_boxed(&root, 6).await, Ok(6));
    });
}
