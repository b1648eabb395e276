use ctx::ctx;

#[ctx]
async fn fetch() {
    let parent = ctx.clone();
    let task = async move {
        parent.with_cancel();
    };
    task.await;
}

fn main() {}
