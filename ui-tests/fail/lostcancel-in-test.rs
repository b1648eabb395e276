#[ctx::test]
async fn runs() {
    let (child, _) = ctx.with_cancel();
    assert!(!child.is_done());
}

fn main() {}
