#[ctx::test]
fn runs() {
    let _ = ctx;
}

fn main() {}
