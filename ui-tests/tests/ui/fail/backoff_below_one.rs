#[taskflow::task(retries = 3, backoff = 0.5)]
pub async fn send_welcome(user_id: u64) {
    let _ = user_id;
}

fn main() {}
