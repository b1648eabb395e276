#[ctx::test]
#[test]
async fn runs() {
    let _ = ctx;
}

fn main() {}
