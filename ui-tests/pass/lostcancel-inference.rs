//! A `_` whose type is only known from inference, from a written type or
//! from a later line still compiles: the check waits for the type.
#![deny(warnings)]

use std::sync::mpsc;

use ctx::{ctx, Context};

fn pair<T: Default + Clone>() -> (T, T) {
    (T::default(), T::default())
}

#[ctx]
fn inferred_later() -> u8 {
    // The type of `_` is `T`, fixed only by the next line.
    let (a, _) = pair();
    let b: u8 = a;
    // Inner types fixed later.
    let (tx, _) = mpsc::channel();
    tx.send(1u8).ok();
    let (mut v, _) = (Vec::new(), String::new());
    v.push(b);
    v[0]
}

#[ctx]
fn inferred_from_a_written_type() -> usize {
    let (a, _): (u8, u16) = Default::default();
    let (evens, _): (Vec<u32>, Vec<u32>) = (1..10).partition(|n| n % 2 == 0);
    let _: Box<dyn Fn(u8) -> u8> = Box::new(|x| x.wrapping_add(1));
    let (f, _): (Box<dyn Fn(u8) -> u8>, u8) = (Box::new(|x| x.wrapping_add(1)), 1);
    let _: Vec<u8> = "abc".bytes().collect();
    let _: u64 = 5u32.into();
    usize::from(a) + evens.len() + usize::from(f(1))
}

#[ctx]
fn literals_and_closures() -> i32 {
    let (n, _) = (1, 2);
    let make = || (n, ctx.clone());
    let (m, _) = make();
    let _ = "5".parse::<u8>();
    n + m
}

fn main() {
    let root = Context::background();
    assert_eq!(inferred_later(&root), 0);
    assert_eq!(inferred_from_a_written_type(&root), 4 + 2);
    assert_eq!(literals_and_closures(&root), 2);
}
