#[ctx::test(start_pause = true)]
async fn on_a_paused_clock() {
    let _ = ctx;
}

fn main() {}
