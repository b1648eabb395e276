#[ctx::test(worker_threads = 2, start_paused = true)]
async fn on_a_paused_clock() {
    let _ = ctx;
}

fn main() {}
