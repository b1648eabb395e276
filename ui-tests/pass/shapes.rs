//! `#[ctx]` on every shape of function, with no warning: unused `ctx`,
//! diverging bodies, `impl Trait` returns, async trait methods, both
//! spellings of the attribute.
#![deny(warnings)]

use std::fmt::Display;
use std::time::Duration;

use ctx::{ctx, Context};

trait Service {
    #[ctx]
    async fn call(&self, id: u64) -> Result<u64, ctx::Error>;

    #[ctx]
    fn name(&self) -> &str;
}

struct Echo(String);

impl Service for Echo {
    #[ctx]
    async fn call(&self, id: u64) -> Result<u64, ctx::Error> {
        Ok(id)
    }

    // `ctx` unused: no warning.
    #[ctx]
    fn name(&self) -> &str {
        &self.0
    }
}

#[ctx]
#[allow(dead_code)]
fn not_written_yet() -> Result<u32, ctx::Error> {
    todo!()
}

#[ctx]
#[allow(dead_code)]
async fn never_returns() -> Result<u32, ctx::Error> {
    loop {
        tokio::task::yield_now().await;
    }
}

#[ctx(timeout = Duration::from_secs(1))]
#[allow(dead_code)]
fn diverges_under_timeout() -> u32 {
    panic!("not yet")
}

#[ctx]
async fn displays(value: u32) -> Result<impl Display, ctx::Error> {
    Ok(value)
}

#[ctx::ctx]
pub(crate) fn full_path<T: Clone>(value: &T) -> T
where
    T: Send,
{
    value.clone()
}

fn main() {
    let root = Context::background();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(Echo("e".into()).call(&root, 3)), Ok(3));
    assert_eq!(Echo("e".into()).name(&root), "e");
    let shown = runtime.block_on(displays(&root, 4)).unwrap().to_string();
    assert_eq!(shown, "4");
    assert_eq!(full_path(&root, &5), 5);
}
