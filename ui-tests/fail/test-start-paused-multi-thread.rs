#[ctx::test(flavor = "multi_thread", start_paused = true)]
async fn on_a_paused_clock() {
    let _ = ctx;
}

fn main() {}
