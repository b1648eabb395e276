#[ctx::test(start_paused = "yes")]
async fn on_a_paused_clock() {
    let _ = ctx;
}

fn main() {}
