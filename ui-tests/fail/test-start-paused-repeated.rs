#[ctx::test(start_paused = true, start_paused = false)]
async fn on_a_paused_clock() {
    let _ = ctx;
}

fn main() {}
