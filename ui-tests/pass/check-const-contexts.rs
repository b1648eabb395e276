//! Const contexts are left as written: `#[ctx::check]` on an `impl` block or
//! a module keeps its `const fn`s, consts and statics compiling (the check's
//! calls are not `const`, E0015), and a checked body's inline `const { .. }`
//! blocks, array lengths and const generic arguments are not wrapped. A
//! guard cannot be made in a const context anyway.
#![deny(warnings)]

use ctx::{ctx, Context};

const fn helper_c() -> (u32, u32) {
    (1, 2)
}

struct S;

#[ctx::check]
impl S {
    const fn zero() -> u32 {
        let _ = helper_c();
        let (_a, _) = helper_c();
        helper_c().0 - 1
    }

    const ONE: u32 = {
        let (one, _) = helper_c();
        one
    };

    // A non-const function beside them is still checked.
    fn call(parent: &Context) -> bool {
        let (child, _cancel) = parent.with_cancel();
        child.is_done()
    }
}

#[ctx::check]
mod consts {
    pub const fn first() -> u32 {
        let _ = super::helper_c();
        super::helper_c().0
    }

    pub const TWO: u32 = {
        let (_, two) = super::helper_c();
        two
    };

    pub static THREE: u32 = {
        let (one, two) = super::helper_c();
        let _ = super::helper_c();
        one + two
    };
}

#[ctx::check]
const fn checked_const_fn() -> u32 {
    let _ = helper_c();
    helper_c().1
}

fn sized<const N: usize>() -> usize {
    N
}

#[ctx]
fn const_blocks_in_a_body() -> usize {
    let one = const {
        let _ = helper_c();
        helper_c().0
    };
    let array = [0u8; {
        let _ = helper_c();
        helper_c().1 as usize
    }];
    let typed: [u8; helper_c().0 as usize] = [1];
    one as usize + array.len() + typed.len() + sized::<{ helper_c().0 as usize + 1 }>()
}

fn main() {
    let root = Context::background();
    assert_eq!(S::zero(), 0);
    assert_eq!(S::ONE, 1);
    assert!(!S::call(&root));
    assert_eq!(consts::first(), 1);
    assert_eq!(consts::TWO, 2);
    assert_eq!(consts::THREE, 3);
    assert_eq!(checked_const_fn(), 2);
    assert_eq!(const_blocks_in_a_body(&root), 1 + 2 + 1 + 2);
}
