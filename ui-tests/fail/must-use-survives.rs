// The user's attributes stay on the function: `#[must_use]` still warns.
#![deny(unused_must_use)]

use ctx::{ctx, Context};

#[ctx]
#[must_use = "the count is the point"]
fn count() -> u32 {
    1
}

fn main() {
    count(&Context::background());
}
